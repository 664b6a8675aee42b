"""The v1 job API, calling the registered functions directly against Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import azure.functions.queue as fq
import pytest

from shared.api import jobs, worker
from shared.jobs.messages import JobMessage
from shared.services import Services
from tests.circuits import BELL

BELL3 = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
    "h q[0];\ncx q[0], q[1];\nc = measure q;\n"
)


def deliver(user_id: str, job_id: str, *, dequeue_count: int = 1, message_id: str = "") -> None:
    """Hand the worker function one delivery of the job's queue message."""
    msg = fq.QueueMessage(
        id=message_id or uuid.uuid4().hex,
        body=JobMessage(user_id, job_id).encode().encode(),
        dequeue_count=dequeue_count,
    )
    worker.run_job(msg)


def queued_job_ids(svc: Services) -> list[str]:
    """Job ids of the messages on `jobs` right now (peeked, not taken)."""
    from shared.storage.clients import JOBS_QUEUE

    peeked = svc.storage.queue(JOBS_QUEUE).peek_messages(max_messages=32)
    return [JobMessage.decode(m.content).job_id for m in peeked]


_ROUTES = {
    jobs.job_status: ("GET", "/api/v1/status/{}"),
    jobs.job_results: ("GET", "/api/v1/results/{}"),
    jobs.cancel_job: ("DELETE", "/api/v1/jobs/{}"),
}


def on_job(http: Callable[..., Any], fn: Any, user: Any, job_id: str) -> Any:
    """Call one of the per-job functions (status, results, cancel) as `user`."""
    method, path = _ROUTES[fn]
    return http(
        fn, method, path.format(job_id), headers=user.headers, route_params={"job_id": job_id}
    )


def submitted(http: Callable[..., Any], user: Any, fn: Any = jobs.execute) -> str:
    """The id of a Bell job `user` submitted (queued, or run in the request by execute_sync)."""
    path = "/execute-sync" if fn is jobs.execute_sync else "/api/v1/execute"
    return str(http(fn, "POST", path, body={"qasm": BELL}, headers=user.headers).body["job_id"])


def test_a_bell_circuit_is_queued_then_run_by_the_worker_into_half_00_half_11(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a user
    user = make_user()
    # when they submit a Bell circuit
    accepted = http(
        jobs.execute, "POST", "/api/v1/execute", body={"qasm": BELL}, headers=user.headers
    )
    # then it is accepted, queued and pollable
    assert accepted.status == 202
    job_id = accepted.body["job_id"]
    assert accepted.body["status"] == "queued"
    assert accepted.body["message"] == "Job queued for processing"
    assert isinstance(accepted.body["estimated_time_seconds"], int)
    assert accepted.headers["Location"] == f"/api/v1/status/{job_id}"
    assert accepted.headers["X-Request-ID"]
    status = on_job(http, jobs.job_status, user, job_id)
    assert status.body["status"] == "queued"
    assert status.body["created_at"].endswith("Z")
    assert status.body["started_at"] is None and "result" not in status.body

    # when the worker gets the message
    deliver(user.user_id, job_id)

    # then the job is completed with Bell counts
    status = on_job(http, jobs.job_status, user, job_id)
    assert status.body["status"] == "completed"
    counts = status.body["result"]["counts"]
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 1024
    assert 400 < counts["00"] < 624
    results = on_job(http, jobs.job_results, user, job_id)
    assert results.status == 200
    meta = results.body["metadata"]
    assert meta["backend"] == "qiskit_aer" and meta["shots"] == 1024
    assert meta["num_qubits"] == 2 and meta["method"] == "stabilizer"
    assert meta["execution_time_ms"] > 0


def test_submit_puts_exactly_one_message_with_ids_only_on_the_jobs_queue(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    job_id = f"mine-{uuid.uuid4().hex[:8]}"
    http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        body={"qasm": BELL3, "shots": 10, "job_id": job_id},
        headers=user.headers,
    )
    assert queued_job_ids(services_env).count(job_id) <= 1  # peek sees at most 32
    job = services_env.jobs._repo.get(user.user_id, job_id)  # noqa: SLF001
    assert job is not None and job.enqueued and job.status == "queued"


def test_execute_sync_answers_with_counts_and_records_a_completed_job(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    answer = http(
        jobs.execute_sync, "POST", "/execute-sync", body={"qasm": BELL3}, headers=user.headers
    )
    assert answer.status == 200
    assert answer.body["status"] == "completed"
    assert set(answer.body["counts"]) == {"00", "11"}
    assert answer.body["metadata"]["qasm_version"] == 3
    job_id = answer.body["job_id"]
    results = on_job(http, jobs.job_results, user, job_id)
    assert results.body["counts"] == answer.body["counts"]


def test_a_custom_job_id_is_unique_per_user_but_free_for_another_user(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    alice, bob = make_user(), make_user()
    body = {"qasm": BELL, "job_id": "same-id"}
    first = http(jobs.execute, "POST", "/api/v1/execute", body=body, headers=alice.headers)
    again = http(jobs.execute, "POST", "/api/v1/execute", body=body, headers=alice.headers)
    other = http(jobs.execute, "POST", "/api/v1/execute", body=body, headers=bob.headers)
    assert first.status == 202 and other.status == 202
    assert again.status == 409 and again.body["error_code"] == "DUPLICATE_JOB_ID"
    assert set(again.body) == {"detail", "error_code", "request_id"}


def test_another_users_job_status_results_and_cancel_are_404(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    alice, mallory = make_user(), make_user()
    job_id = submitted(http, alice)
    for fn in (jobs.job_status, jobs.job_results, jobs.cancel_job):
        answer = on_job(http, fn, mallory, job_id)
        assert answer.status == 404, fn
        assert answer.body["error_code"] == "JOB_NOT_FOUND"


def test_a_cancelled_job_never_runs_even_when_its_message_is_delivered(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    job_id = submitted(http, user)
    cancelled = on_job(http, jobs.cancel_job, user, job_id)
    assert cancelled.status == 200
    assert cancelled.body == {"job_id": job_id, "status": "cancelled"}

    deliver(user.user_id, job_id)

    status = on_job(http, jobs.job_status, user, job_id)
    assert status.body["status"] == "cancelled" and status.body["started_at"] is None
    results = on_job(http, jobs.job_results, user, job_id)
    assert results.status == 409 and results.body["error_code"] == "JOB_NOT_COMPLETE"
    repo = services_env.jobs._repo  # noqa: SLF001
    job = repo.get(user.user_id, job_id)
    assert job is not None and repo.get_result(job.result_blob) is None


def test_a_finished_job_is_not_cancellable(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    job_id = submitted(http, user, jobs.execute_sync)
    answer = on_job(http, jobs.cancel_job, user, job_id)
    assert answer.status == 409 and answer.body["error_code"] == "JOB_NOT_CANCELLABLE"
    assert "completed" in answer.body["detail"]


def test_results_of_a_queued_job_are_409_naming_its_status(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    job_id = submitted(http, user)
    answer = on_job(http, jobs.job_results, user, job_id)
    assert answer.status == 409
    assert answer.body["error_code"] == "JOB_NOT_COMPLETE" and "queued" in answer.body["detail"]


def test_execute_sync_past_its_bound_answers_202_and_the_job_still_completes(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from shared.config import get_settings
    from shared.services import services
    from shared.suppliers import aer

    # given a sync bound of 1 s and a circuit that takes 1.5 s
    user = make_user()
    monkeypatch.setenv("QCOS_SYNC_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()  # the services are rebuilt with the new bound on next use
    services.cache_clear()
    real = aer.run

    def slow(parsed: Any, shots: int, **kwargs: Any) -> Any:
        time.sleep(1.5)
        return real(parsed, shots, **kwargs)

    monkeypatch.setattr(aer, "run", slow)
    # when it is run in the request
    answer = http(
        jobs.execute_sync, "POST", "/execute-sync", body={"qasm": BELL}, headers=user.headers
    )
    # then the request ends at the bound with the job to poll
    assert answer.status == 202
    job_id = answer.body["job_id"]
    assert answer.body["status"] == "processing"
    assert answer.headers["Location"] == f"/api/v1/status/{job_id}"
    # and the job completes in the background
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        status = on_job(http, jobs.job_status, user, job_id)
        if status.body["status"] == "completed":
            break
        time.sleep(0.1)
    assert status is not None and status.body["status"] == "completed"


@pytest.mark.parametrize("job_id", ["a" * 65, "it's", "x y", "ünï"])
def test_an_id_no_job_can_have_is_404_not_a_storage_error(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any], job_id: str
) -> None:
    user = make_user()
    for fn in (jobs.job_status, jobs.job_results, jobs.cancel_job):
        answer = on_job(http, fn, user, job_id)
        assert answer.status == 404 and answer.body["error_code"] == "JOB_NOT_FOUND"
