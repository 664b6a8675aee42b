"""`Idempotency-Key` across a crash and a storage outage, against Azurite through the registered
functions (reliability case 10): a retry finds the job the first attempt made, or makes the
only one; never a second job, never a key locked for minutes."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import UpdateMode

from shared.api import jobs, rerank, suppliers
from shared.jobs.models import Job
from shared.jobs.repository import JobRepository
from shared.services import Services
from shared.storage.clients import IDEMPOTENCY_TABLE
from tests.circuits import BELL

BODY = {"qasm": BELL, "shots": 64}
ROUTES = {"/api/v1/execute": jobs.execute, "/execute-sync": jobs.execute_sync}


def send(http: Callable[..., Any], path: str, headers: dict[str, str]) -> Any:
    return http(ROUTES[path], "POST", path, headers=headers, body=BODY)


@contextmanager
def host_killed_before_the_answer_is_kept(
    monkeypatch: pytest.MonkeyPatch, services_env: Services
) -> Iterator[None]:
    """The request runs to its answer, but its host dies before the key records it."""
    with monkeypatch.context() as m:
        m.setattr(services_env.idempotency, "finish", lambda *args, **kwargs: None)
        yield


def lock_runs_out(services_env: Services, user_id: str, key: str) -> None:
    """As if the key's lock had been held past its bound (the first request died long ago)."""
    services_env.storage.table(IDEMPOTENCY_TABLE).update_entity(
        {
            "PartitionKey": user_id,
            "RowKey": hashlib.sha256(key.encode()).hexdigest(),
            "locked_until": "2000-01-01T00:00:00.000Z",
        },
        mode=UpdateMode.MERGE,
    )


class Outage:
    """Storage unreachable while `on`: every request any storage client sends fails as a
    refused connection does (after the clients' own retries)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on = False
        real = RequestsTransport.send

        def send(transport: Any, request: Any, **kwargs: Any) -> Any:
            if self.on:
                raise ServiceRequestError("storage unreachable (test outage)")
            return real(transport, request, **kwargs)

        monkeypatch.setattr(RequestsTransport, "send", send)


@pytest.mark.parametrize(
    ("path", "first_status"), [("/api/v1/execute", 202), ("/execute-sync", 200)]
)
def test_a_retry_after_a_host_killed_before_keeping_its_answer_finds_the_job_it_made(
    path: str,
    first_status: int,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a first request that made its job, and whose host died before the key kept the answer
    user = make_user("professional")
    headers = {**user.headers, "Idempotency-Key": f"killed{path}"}
    with host_killed_before_the_answer_is_kept(monkeypatch, services_env):
        first = send(http, path, headers)
    assert first.status == first_status
    # when the client retries with the same key and body
    retry = send(http, path, headers)
    # then it is answered from that job, and no second job exists
    assert retry.status == first_status, retry.body
    assert retry.body["job_id"] == first.body["job_id"]
    assert retry.body["status"] == first.body["status"]
    if path == "/execute-sync":
        assert retry.body["counts"] == first.body["counts"]
    else:
        assert retry.headers["Location"] == f"/api/v1/status/{first.body['job_id']}"
    assert services_env.jobs.usage(user.user_id).jobs_total == 1
    # and that answer is now the key's: the next retry is its replay
    again = send(http, path, headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.body["job_id"] == first.body["job_id"]


@pytest.mark.parametrize(
    ("fn", "path", "body", "route_params"),
    [
        (
            suppliers.supplier_execute,
            "/api/v1/braket/execute",
            {"qasm": BELL, "device": "sv1", "shots": 64},
            {"supplier": "braket"},
        ),
        (
            rerank.rerank,
            "/rerank",
            {"query": "reset a password", "candidates": ["in Settings", "call us"], "k": 1},
            {},
        ),
    ],
    ids=["supplier", "rerank"],
)
def test_the_other_posts_that_make_a_job_find_a_killed_requests_job_too(
    fn: Callable[..., Any],
    path: str,
    body: dict[str, Any],
    route_params: dict[str, str],
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a first request that made its job and died before the key kept the answer
    user = make_user("professional")
    headers = {**user.headers, "Idempotency-Key": f"killed{path}"}

    def post() -> Any:
        return http(fn, "POST", path, headers=headers, body=body, route_params=route_params)

    with host_killed_before_the_answer_is_kept(monkeypatch, services_env):
        first = post()
    assert first.status == 202, first.body
    # when the client retries
    retry = post()
    # then it is answered from that job, and no second job exists
    assert retry.status == 202, retry.body
    assert retry.body["job_id"] == first.body["job_id"]
    assert retry.headers["Location"] == first.headers["Location"]
    assert services_env.jobs.usage(user.user_id).jobs_total == 1


def test_a_retry_after_a_storage_outage_is_accepted_at_once_and_makes_the_only_job(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given storage that becomes unreachable as the first request writes its job row (so
    # freeing the key fails too)
    user = make_user("professional")
    headers = {**user.headers, "Idempotency-Key": "outage-1"}
    outage = Outage(monkeypatch)
    real_insert = JobRepository.insert

    def insert(repo: JobRepository, job: Job) -> bool:
        outage.on = True
        return real_insert(repo, job)

    with monkeypatch.context() as m:
        m.setattr(JobRepository, "insert", insert)
        first = send(http, "/api/v1/execute", headers)
    assert first.status == 503
    # when storage is back and the client retries with the same key at once
    outage.on = False
    retry = send(http, "/api/v1/execute", headers)
    # then it is accepted (not 409 for minutes), and it made the only job
    assert retry.status == 202, retry.body
    assert services_env.jobs.usage(user.user_id).jobs_total == 1
    status = http(
        jobs.job_status,
        "GET",
        f"/api/v1/status/{retry.body['job_id']}",
        headers=user.headers,
        route_params={"job_id": retry.body["job_id"]},
    )
    assert status.status == 200


def test_a_retry_after_an_outage_that_lost_the_reply_finds_the_job_that_was_written(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a first request whose job row was written, but storage went down before the
    # reply came back (the client got 503 and does not know the job exists)
    user = make_user("professional")
    headers = {**user.headers, "Idempotency-Key": "outage-lost-reply"}
    outage = Outage(monkeypatch)
    real_insert = JobRepository.insert
    made: list[str] = []

    def insert(repo: JobRepository, job: Job) -> bool:
        assert real_insert(repo, job)
        made.append(job.job_id)
        outage.on = True
        raise ServiceResponseError("connection reset before the reply (test outage)")

    with monkeypatch.context() as m:
        m.setattr(JobRepository, "insert", insert)
        first = send(http, "/api/v1/execute", headers)
    assert first.status == 503
    # when storage is back and the client retries with the same key
    outage.on = False
    retry = send(http, "/api/v1/execute", headers)
    # then it is answered from the job that was written, and no second job exists
    assert retry.status == 202, retry.body
    assert retry.body["job_id"] == made[0]
    assert services_env.jobs.usage(user.user_id).jobs_total == 1


def test_concurrent_retries_of_a_dead_requests_key_converge_on_its_one_job(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a first request that made its job and died before keeping the answer, long
    # enough ago that its lock ran out
    user = make_user("professional")
    key = "converge-1"
    headers = {**user.headers, "Idempotency-Key": key}
    with host_killed_before_the_answer_is_kept(monkeypatch, services_env):
        first = send(http, "/api/v1/execute", headers)
    assert first.status == 202
    lock_runs_out(services_env, user.user_id, key)
    # when eight retries arrive at once
    start = threading.Barrier(8)

    def retry(_: int) -> Any:
        start.wait()
        return send(http, "/api/v1/execute", headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(retry, range(8)))
    # then every one answers the first attempt's job, and it is the only job
    assert {a.status for a in answers} == {202}, [a.body for a in answers]
    assert {a.body["job_id"] for a in answers} == {first.body["job_id"]}
    assert services_env.jobs.usage(user.user_id).jobs_total == 1
