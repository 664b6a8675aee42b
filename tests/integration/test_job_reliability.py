"""The reliability cases of ../shared/reliability.md that concern the job flow, against Azurite."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from funchost.testing import Azurite
from shared.accounts.tiers import TierName
from shared.config import Settings, StorageSettings
from shared.errors import StorageUnavailable
from shared.jobs.messages import Delivery, JobMessage
from shared.jobs.models import Job, JobStatus
from shared.jobs.schemas import ExecuteRequest
from shared.services import Services
from shared.storage.clients import JOBS_POISON_QUEUE
from tests.circuits import BELL


def build(conn: str, **overrides: Any) -> Services:
    return Services.build(Settings(storage=StorageSettings(connection_string=conn), **overrides))


@pytest.fixture
def svc(azurite: Azurite) -> Services:
    return build(azurite.connection_string)


@pytest.fixture
def principal(svc: Services) -> Any:
    created = svc.accounts.create_user(f"r-{uuid.uuid4().hex[:10]}@example.com", TierName.FREE)
    return svc.accounts.authenticate(created.api_key)


def body(job_id: str | None = None) -> str:
    return JobMessage("u", job_id or "j").encode()


def message_for(principal: Any, job_id: str) -> str:
    return JobMessage(principal.user_id, job_id).encode()


def claimed_job(svc: Services, principal: Any, *, message_id: str) -> str:
    """A submitted job, claimed by delivery 1 of `message_id` (a worker that may be alive)."""
    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id
    repo = svc.jobs._repo  # noqa: SLF001
    job = repo.get(principal.user_id, job_id)
    assert job is not None
    claim = {
        "status": JobStatus.PROCESSING,
        "claimed_at": job.created_at,
        "claim_message_id": message_id,
        "claim_dequeue_count": 1,
    }
    assert repo.update(job, claim)
    return job_id


def counting_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every Aer run (by circuit hash) while still running it."""
    from shared.suppliers import aer

    runs: list[str] = []
    real = aer.run

    def run(parsed: Any, shots: int, **kwargs: Any) -> Any:
        runs.append(parsed.qasm_hash)
        return real(parsed, shots, **kwargs)

    monkeypatch.setattr(aer, "run", run)
    return runs


def test_a_redelivery_after_results_were_written_runs_nothing(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a job that ran to completion, whose message was not deleted (crash before delete)
    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id
    runs = counting_runs(monkeypatch)
    svc.jobs.run(message_for(principal, job_id), Delivery("m1", 1))
    first = svc.jobs.results(principal, job_id)
    # when the same message is delivered again
    svc.jobs.run(message_for(principal, job_id), Delivery("m1", 2))
    # then nothing ran a second time and the result is unchanged
    assert len(runs) == 1
    assert svc.jobs.results(principal, job_id) == first


def test_two_workers_racing_one_message_run_it_once(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a queued job and the same delivery handed to two workers at once
    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id
    runs = counting_runs(monkeypatch)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            svc.jobs.run(message_for(principal, job_id), Delivery("same", 1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then one claim won: one run, and the job is completed
    assert not errors
    assert len(runs) == 1
    assert svc.jobs.status(principal, job_id).status == "completed"


def test_a_duplicate_message_leaves_a_job_claimed_by_a_live_worker_alone(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = claimed_job(svc, principal, message_id="other")
    runs = counting_runs(monkeypatch)
    svc.jobs.run(message_for(principal, job_id), Delivery("duplicate", 1))
    assert runs == []
    assert svc.jobs.status(principal, job_id).status == "processing"


def test_a_redelivery_of_the_claiming_message_takes_over_from_a_dead_worker(
    svc: Services, principal: Any
) -> None:
    # given a worker that claimed the job with delivery 1 of message m and died
    job_id = claimed_job(svc, principal, message_id="m")
    # when m comes back as delivery 2
    svc.jobs.run(message_for(principal, job_id), Delivery("m", 2))
    # then the job completes
    assert svc.jobs.status(principal, job_id).status == "completed"


def test_etag_guards_a_claim_against_a_stale_read(svc: Services, principal: Any) -> None:
    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id
    repo = svc.jobs._repo  # noqa: SLF001
    first = repo.get(principal.user_id, job_id)
    second = repo.get(principal.user_id, job_id)
    assert first is not None and second is not None
    assert repo.update(first, {"status": JobStatus.CANCELLED})
    assert not repo.update(second, {"status": JobStatus.PROCESSING})
    fresh = repo.get(principal.user_id, job_id)
    assert fresh is not None and fresh.status is JobStatus.CANCELLED


def test_a_duplicate_insert_is_refused_and_leaves_the_first_row(svc: Services) -> None:
    repo = svc.jobs._repo  # noqa: SLF001
    job = Job(
        user_id="dup-user",
        job_id=uuid.uuid4().hex,
        status=JobStatus.QUEUED,
        shots=1,
        created_at="2026-01-01T00:00:00.000Z",
        circuit_blob="a",
    )
    assert repo.insert(job)
    copy = Job(
        user_id=job.user_id,
        job_id=job.job_id,
        status=JobStatus.COMPLETED,
        shots=9,
        created_at=job.created_at,
        circuit_blob="b",
    )
    assert not repo.insert(copy)
    stored = repo.get(job.user_id, job.job_id)
    assert stored is not None and stored.shots == 1 and stored.circuit_blob == "a"


def test_the_last_delivery_marks_the_job_failed_before_the_message_goes_to_poison(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id
    repo = svc.jobs._repo  # noqa: SLF001

    def broken(job: Any) -> str:
        raise ConnectionError("blob store hiccup")

    monkeypatch.setattr(repo, "circuit_of", broken)
    # deliveries 1-4 raise (the host retries) and leave the job waiting
    with pytest.raises(ConnectionError):
        svc.jobs.run(message_for(principal, job_id), Delivery("m", 1))
    assert svc.jobs.status(principal, job_id).status == "processing"
    # the fifth is the last: the job is failed with a readable reason, then the error propagates
    with pytest.raises(ConnectionError):
        svc.jobs.run(message_for(principal, job_id), Delivery("m", 5))
    status = svc.jobs.status(principal, job_id)
    assert status.status == "failed"
    assert status.error is not None and status.error.error_code == "EXECUTION_FAILED"
    assert "5 attempts" in status.error.detail and "hiccup" not in status.error.detail


def test_a_malformed_message_goes_to_poison_at_once_without_an_error(svc: Services) -> None:
    marker = f"not json {uuid.uuid4().hex}"
    svc.jobs.run(marker, Delivery("bad", 1))  # no exception: no retries burnt
    poison = svc.storage.queue(JOBS_POISON_QUEUE).peek_messages(max_messages=32)
    assert marker in [m.content for m in poison]


def test_a_permanent_failure_fails_the_job_with_a_reason_and_no_retry(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.suppliers import aer

    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id

    def refuse(parsed: Any, shots: int, **kwargs: Any) -> Any:
        raise aer.SimulationError("Aer refused the circuit: out of memory")

    monkeypatch.setattr(aer, "run", refuse)
    svc.jobs.run(message_for(principal, job_id), Delivery("m", 1))  # returns: no retry
    status = svc.jobs.status(principal, job_id)
    assert status.status == "failed" and status.error is not None
    assert status.error.error_code == "SIMULATION_FAILED"
    assert "out of memory" in status.error.detail


def test_a_job_accepted_but_not_enqueued_is_enqueued_by_recovery(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch, azurite: Azurite
) -> None:
    # given the enqueue fails after the row was written
    repo = svc.jobs._repo  # noqa: SLF001

    def down(message: JobMessage) -> None:
        raise ConnectionError("queue down")

    monkeypatch.setattr(repo, "enqueue", down)
    accepted = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL))
    # then the job is still accepted (it will run) and waits as not enqueued
    assert accepted.status == "queued"
    job = repo.get(principal.user_id, accepted.job_id)
    assert job is not None and not job.enqueued
    monkeypatch.undo()
    # when the recovery timer runs past the grace period
    eager = build(azurite.connection_string, recover_after_seconds=0)
    import time

    time.sleep(0.01)
    assert eager.jobs.recover() >= 1
    # then the job is enqueued and runs
    job = repo.get(principal.user_id, accepted.job_id)
    assert job is not None and job.enqueued
    svc.jobs.run(message_for(principal, accepted.job_id), Delivery("r", 1))
    assert svc.jobs.status(principal, accepted.job_id).status == "completed"


def test_storage_failing_mid_submit_is_503_with_nothing_written_and_the_retry_works(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.core.exceptions import ServiceRequestError

    from shared.errors import to_api_error

    repo = svc.jobs._repo  # noqa: SLF001
    job_id = f"outage-{uuid.uuid4().hex[:8]}"
    request = ExecuteRequest(qasm=BELL, job_id=job_id)

    # given the table stops answering after the circuit blob was written
    def unreachable(job: Job) -> bool:
        raise ServiceRequestError("connection refused")

    monkeypatch.setattr(repo, "insert", unreachable)
    with pytest.raises(ServiceRequestError) as caught:
        svc.jobs.submit(principal, request)
    # then the answer is a 503 with Retry-After, and nothing is left behind
    error = to_api_error(caught.value)
    assert isinstance(error, StorageUnavailable) and error.status == 503
    assert error.headers["Retry-After"]
    monkeypatch.undo()
    assert repo.get(principal.user_id, job_id) is None
    blobs = svc.storage.container("circuits").list_blobs(name_starts_with=principal.user_id)
    assert [b.name for b in blobs] == []
    # when storage is back, the same request is accepted
    assert svc.jobs.submit(principal, request).job_id == job_id


def test_storage_unreachable_answers_503_in_the_standard_body(
    unreachable_storage_env: None, http: Callable[..., Any]
) -> None:
    from shared.api import accounts, health, jobs

    key = {"X-API-Key": "qcos_0123456789abcdef_" + "A" * 43}
    answer = http(jobs.execute, "POST", "/api/v1/execute", body={"qasm": BELL}, headers=key)
    assert answer.status == 503
    assert answer.body["error_code"] == "STORAGE_UNAVAILABLE"
    assert set(answer.body) == {"detail", "error_code", "request_id"}
    assert int(answer.headers["Retry-After"]) > 0
    assert "127.0.0.1" not in answer.body["detail"]
    me = http(accounts.me, "GET", "/user/me", headers=key)
    assert me.status == 503
    # the probes say so too, and /health does not care
    root = http(health.root, "GET", "/")
    assert root.status == 200 and root.body["status"] == "degraded"
    assert root.body["queue_connected"] is False
    ready = http(health.ready, "GET", "/ready")
    assert ready.status == 503 and ready.body["status"] == "not_ready"
    assert set(ready.body["checks"]) == {"tables", "queues", "blobs"}
    assert http(health.health, "GET", "/health").status == 200


def test_a_circuit_the_worker_cannot_accept_fails_the_job_instead_of_leaving_it_claimed(
    svc: Services, principal: Any, azurite: Azurite
) -> None:
    # given a job accepted under a larger operation limit than the worker now has
    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id
    from shared.config import Limits

    strict = build(azurite.connection_string, limits=Limits(max_operations=1))
    # when the worker gets it
    strict.jobs.run(message_for(principal, job_id), Delivery("m", 1))
    # then the job is failed with the limit's code, not left processing
    status = svc.jobs.status(principal, job_id)
    assert status.status == "failed" and status.error is not None
    assert status.error.error_code == "OPERATION_LIMIT_EXCEEDED"


def test_a_simulator_crash_is_retried_rather_than_failing_the_job(
    svc: Services, principal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.suppliers import aer

    job_id = svc.jobs.submit(principal, ExecuteRequest(qasm=BELL)).job_id
    real = aer.run

    def crashed(parsed: Any, shots: int, **kwargs: Any) -> Any:
        raise aer.SimulatorUnavailable("the simulator's process stopped")

    # given the simulator process dies under the job (another job ran it out of memory)
    monkeypatch.setattr(aer, "run", crashed)
    with pytest.raises(aer.SimulatorUnavailable):
        svc.jobs.run(message_for(principal, job_id), Delivery("m", 1))
    assert svc.jobs.status(principal, job_id).status == "processing"
    # when the message comes back and the simulator is healthy again, the job completes
    monkeypatch.setattr(aer, "run", real)
    svc.jobs.run(message_for(principal, job_id), Delivery("m", 2))
    assert svc.jobs.status(principal, job_id).status == "completed"
