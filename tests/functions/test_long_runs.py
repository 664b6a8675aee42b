"""Long runs end, and a user can see and stop them: the wall-clock limit of a run (whatever its
estimate said), cancelling a job while it runs, and a retried job's attempts. Against Azurite,
through the registered functions, with the simulator's real processes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions.queue as fq
import pytest

from shared.accounts.tiers import tier
from shared.api import jobs, worker
from shared.config import get_settings
from shared.jobs.messages import JobMessage
from shared.jobs.models import JobStatus
from shared.services import Services, services
from shared.suppliers import aer, processes

# 18 qubits measured mid-way: every shot is a run of its own, about 0.8 s each on this machine,
# so 1,000 shots run for minutes.
LONG = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[18] q;\nbit[18] c;\n'
    + "rx(0.1) q[0];\ncx q[0], q[1];\nc[0] = measure q[0];\n" * 100
    + "c = measure q;\n"
)
STATUS_PATH = "/api/v1/status/{}"


@pytest.fixture
def estimates_that_lie(services_env: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A run limit of 2 s, and a simulator estimate that misses what every shot of a
    mid-circuit measurement costs: the long circuit is accepted as a quick one."""
    monkeypatch.setenv("QCOS_MAX_RUN_SECONDS", "2")
    monkeypatch.setattr(aer, "_NS_PER_SHOT_AMPLITUDE", 0.0)
    monkeypatch.setattr(aer, "_NS_PER_SHOT_OPERATION", 0.0)
    get_settings.cache_clear()
    services.cache_clear()
    yield


def deliver(user_id: str, job_id: str, *, dequeue_count: int = 1, message_id: str = "m") -> None:
    msg = fq.QueueMessage(
        id=message_id,
        body=JobMessage(user_id, job_id).encode().encode(),
        dequeue_count=dequeue_count,
    )
    worker.run_job(msg)


def status(http: Callable[..., Any], user: Any, job_id: str) -> Any:
    return http(
        jobs.job_status,
        "GET",
        STATUS_PATH.format(job_id),
        headers=user.headers,
        route_params={"job_id": job_id},
    ).body


def submit_long(http: Callable[..., Any], user: Any, shots: int = 1000) -> str:
    answer = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        headers=user.headers,
        body={"qasm": LONG, "shots": shots},
    )
    assert answer.status == 202, answer.body
    return str(answer.body["job_id"])


def simulator_pids() -> set[int]:
    return set(processes.shared().processes())


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_run_past_the_limit_is_stopped_and_fails_whatever_its_estimate_said(
    estimates_that_lie: None,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
) -> None:
    # given a job accepted on a wrong estimate
    user = make_user()
    job_id = submit_long(http, user)
    before = simulator_pids()

    # when the worker runs it
    deliver(user.user_id, job_id)

    # then it failed with the limit named, and the process that ran it is gone
    body = status(http, user, job_id)
    assert body["status"] == "failed"
    assert body["error"]["error_code"] == "RUN_TIME_LIMIT_EXCEEDED"
    assert "more than 2 s" in body["error"]["detail"]
    assert before.isdisjoint(simulator_pids())
    # and nothing was charged; the day's run was given back
    svc = services()
    assert svc.ledger.repo.get(user.user_id, job_id) is None
    assert svc.quotas.use(user.user_id, tier(user.tier)).used == 0
    # and the next run gets a fresh process
    again = aer.run_in_pool(_answer, 42, what="a check")
    assert again == 42


def _answer(value: int) -> int:
    return value


def test_a_running_job_shows_its_progress_and_cancelling_it_stops_its_run_and_charges_nothing(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
) -> None:
    # given a job of 40 shots that each run on their own (about 30 s in all), in a worker
    user = make_user()
    job_id = submit_long(http, user, shots=40)
    runner = threading.Thread(target=deliver, args=(user.user_id, job_id), daemon=True)
    runner.start()
    assert wait_for(lambda: status(http, user, job_id)["status"] == "processing", 30)
    shown = status(http, user, job_id)
    assert shown["attempts"] == 1 and shown["started_at"] is not None

    # when it has run some of its shots, its status says how many
    assert wait_for(lambda: "progress" in status(http, user, job_id), 30)
    progress = status(http, user, job_id)["progress"]
    assert progress["shots"] == 40 and 0 < progress["shots_done"] < 40
    running = simulator_pids()
    assert running

    # and when its owner cancels it
    answer = http(
        jobs.cancel_job,
        "DELETE",
        f"/api/v1/jobs/{job_id}",
        headers=user.headers,
        route_params={"job_id": job_id},
    )

    # then the job is cancelled at once and its run stops within a few seconds
    assert answer.status == 200, answer.body
    assert answer.body == {"job_id": job_id, "status": "cancelled"}
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert wait_for(lambda: running.isdisjoint(simulator_pids()), 5)
    body = status(http, user, job_id)
    assert body["status"] == "cancelled" and "result" not in body and "progress" not in body
    # and nothing is charged, the day's run given back
    svc = services()
    assert svc.ledger.repo.get(user.user_id, job_id) is None
    assert svc.quotas.use(user.user_id, tier(user.tier)).used == 0


def test_a_job_whose_worker_died_says_it_was_retried(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a Bell job claimed by a delivery whose worker then died (its message came back)
    user = make_user()
    answer = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        headers=user.headers,
        body={
            "qasm": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
            "h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n"
        },
    )
    job_id = answer.body["job_id"]
    repo = services_env.jobs._repo  # noqa: SLF001
    job = repo.get(user.user_id, job_id)
    assert job is not None
    message_id = uuid.uuid4().hex
    first_start = "2026-01-01T00:00:00.000000Z"
    assert repo.update(
        job,
        {
            "status": JobStatus.PROCESSING,
            "started_at": first_start,
            "claimed_at": first_start,
            "attempts": 1,
            "claim_message_id": message_id,
            "claim_dequeue_count": 1,
        },
    )

    # when the message is delivered again
    deliver(user.user_id, job_id, dequeue_count=2, message_id=message_id)

    # then the job completed on its second attempt, which its status shows
    body = status(http, user, job_id)
    assert body["status"] == "completed"
    assert body["attempts"] == 2
    assert body["started_at"] > first_start
