"""`GET /api/v1/jobs`: the caller's v1 and v2 jobs, newest first, paged and filtered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.api import runtime
from shared.jobs.models import Job, JobStatus
from shared.network.repository import Group, NetworkJob, Slot
from shared.services import Services
from shared.storage import calls
from shared.storage.clients import API_KEYS_TABLE


def at(minute: int) -> str:
    return f"2026-03-01T10:{minute:02d}:00.000Z"


def v1_job(user_id: str, job_id: str, minute: int, **fields: Any) -> Job:
    return Job(
        user_id=user_id,
        job_id=job_id,
        status=fields.pop("status", JobStatus.COMPLETED),
        shots=fields.pop("shots", 100),
        created_at=at(minute),
        **fields,
    )


def network_job(
    user_id: str, job_id: str, minute: int, backends: list[str], kind: str = "single", **kw: Any
) -> NetworkJob:
    return NetworkJob(
        user_id=user_id,
        job_id=job_id,
        status=kw.pop("status", JobStatus.QUEUED),
        kind=kind,
        strategy=kw.pop("strategy", "ordered"),
        created_at=at(minute),
        groups=[Group(circuit_blob="x.qasm", shots=200), Group(circuit_blob="y.qasm", shots=50)]
        if kind == "batch"
        else [Group(circuit_blob="x.qasm", shots=200)],
        slots=[Slot(group=0, backends=backends)],
    )


def listed(http: Callable[..., Any], headers: dict[str, str], query: str = "") -> Any:
    return http(runtime.list_jobs, "GET", f"/api/v1/jobs{query}", headers=headers)


@pytest.fixture
def history(services_env: Services, make_user: Callable[..., Any]) -> Any:
    """A user's v1 jobs, a network job with a run, a batch, and another user's job."""
    user = make_user("enterprise")
    jobs = services_env.jobs._repo
    network = services_env.network._repo
    for job in (
        v1_job(user.user_id, "local-old", 1),
        v1_job(user.user_id, "ionq-run", 3, supplier="azure_quantum", backend="ionq.simulator"),
        v1_job(user.user_id, "local-running", 5, status=JobStatus.PROCESSING),
        v1_job(user.user_id, "ab12-7", 9),  # looks like a run, but of no network job
        v1_job(make_user("enterprise").user_id, "someone-elses", 8),
    ):
        assert jobs.insert(job)
    assert network.insert(network_job(user.user_id, "net1", 4, ["qiskit_aer", "ionq_simulator"]))
    assert jobs.insert(v1_job(user.user_id, "net1-0-0", 6, status=JobStatus.PROCESSING))
    batch = network_job(user.user_id, "batch1", 7, ["qiskit_aer"], kind="batch")
    batch.status = JobStatus.COMPLETED
    assert network.insert(batch)
    return user


def test_the_callers_jobs_come_newest_first_v1_and_v2_alike_without_network_runs(
    history: Any, http: Callable[..., Any]
) -> None:
    # when
    answer = listed(http, history.headers)
    # then
    assert answer.status == 200, answer.body
    jobs = answer.body["jobs"]
    assert [j["job_id"] for j in jobs] == [
        "ab12-7",
        "batch1",
        "local-running",
        "net1",
        "ionq-run",
        "local-old",
    ]
    by_id = {j["job_id"]: j for j in jobs}
    assert by_id["net1"] | {"backends": None} == {
        "job_id": "net1",
        "type": "network",
        "status": "running",  # its run began
        "backend": None,
        "backends": None,
        "strategy": "ordered",
        "shots": 200,
        "created_at": at(4),
        "completed_at": None,
        "location": "/api/v2/network/execute/net1",
    }
    assert by_id["net1"]["backends"] == ["qiskit_aer", "ionq_simulator"]
    assert by_id["batch1"]["type"] == "batch" and by_id["batch1"]["shots"] == 250
    assert by_id["ionq-run"]["backend"] == "ionq_simulator"
    assert by_id["local-old"]["location"] == "/api/v1/status/local-old"
    assert answer.body["next_cursor"] is None


def test_pages_follow_each_other_through_the_cursor_and_end_without_one(
    history: Any, http: Callable[..., Any]
) -> None:
    # when
    seen, cursor, pages = [], "", 0
    while True:
        answer = listed(http, history.headers, f"?limit=4{cursor}")
        assert answer.status == 200, answer.body
        seen += [j["job_id"] for j in answer.body["jobs"]]
        pages += 1
        if answer.body["next_cursor"] is None:
            break
        cursor = f"&cursor={answer.body['next_cursor']}"
    # then
    assert pages == 2
    assert seen == ["ab12-7", "batch1", "local-running", "net1", "ionq-run", "local-old"]


def test_a_later_page_still_shows_an_open_network_job_running(
    history: Any, http: Callable[..., Any]
) -> None:
    # given a page that ends before net1's run began
    first = listed(http, history.headers, "?limit=3")
    # when
    second = listed(http, history.headers, f"?limit=3&cursor={first.body['next_cursor']}")
    # then
    net1 = next(j for j in second.body["jobs"] if j["job_id"] == "net1")
    assert net1["status"] == "running"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status=completed", ["ab12-7", "batch1", "ionq-run", "local-old"]),
        ("?status=running", ["local-running", "net1"]),
        ("?status=processing", ["local-running", "net1"]),
        ("?backend=ionq.simulator", ["net1", "ionq-run"]),
        ("?backend=qiskit_aer&type=job", ["ab12-7", "local-running", "local-old"]),
        ("?type=batch", ["batch1"]),
    ],
)
def test_filters_by_status_backend_and_type(
    history: Any, http: Callable[..., Any], query: str, expected: list[str]
) -> None:
    answer = listed(http, history.headers, query)
    assert answer.status == 200, answer.body
    assert [j["job_id"] for j in answer.body["jobs"]] == expected


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("?limit=101", 422, "VALIDATION_ERROR"),
        ("?page=2", 422, "VALIDATION_ERROR"),
        ("?status=done", 422, "VALIDATION_ERROR"),
        ("?cursor=bm90LWEtY3Vyc29y", 422, "VALIDATION_ERROR"),
        ("?backend=no_such_device", 404, "BACKEND_NOT_FOUND"),
    ],
)
def test_bad_queries_are_refused(
    history: Any, http: Callable[..., Any], query: str, status: int, code: str
) -> None:
    answer = listed(http, history.headers, query)
    assert (answer.status, answer.body["error_code"]) == (status, code)


def test_listing_needs_an_api_key(services_env: Services, http: Callable[..., Any]) -> None:
    assert listed(http, {}).status == 401


def test_a_page_costs_one_storage_call_per_table(history: Any, http: Callable[..., Any]) -> None:
    # given a warm instance (the key verified)
    assert listed(http, history.headers).status == 200
    # when
    with calls.counted() as tally:
        answer = listed(http, history.headers, "?limit=2")
    # then: one query of the caller's partition in `jobs`, one in `networkjobs`
    assert answer.status == 200
    assert tally.excluding(API_KEYS_TABLE) <= 2, tally.by_resource()
