"""The job flow of a cloud supplier against Azurite: submit once, poll through delayed messages,
complete, fail, cancel, time out, and recover a silent poll chain.

The supplier here is a scripted stand-in that behaves as the real adapters promise (a task per
client token, states read on each poll); the real SDK paths have their own offline tests.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.accounts.service import Principal
from shared.circuits import ParsedCircuit
from shared.config import Settings
from shared.errors import Conflict
from shared.jobs.messages import Delivery, JobMessage
from shared.jobs.models import JobStatus
from shared.jobs.schemas import SupplierExecuteRequest
from shared.services import Services
from shared.storage.clients import JOBS_QUEUE
from shared.suppliers.base import (
    EmulatedRun,
    SubmitRequest,
    SupplierRejected,
    SupplierState,
    SupplierUnavailable,
    Target,
    TaskState,
)
from tests.circuits import BELL


@dataclass
class ScriptedSupplier:
    """One task per client token; each poll takes the next scripted answer (the last repeats)."""

    supplier_id: str = "braket"
    script: list[TaskState | Exception] = field(default_factory=list)
    tasks: dict[str, str] = field(default_factory=dict)  # client token -> task id
    refuse_polls: bool = False
    unavailable_submits: int = 0
    submits: int = 0
    polls: int = 0
    cancelled: list[str] = field(default_factory=list)
    crash_after_submit: bool = False
    refuse_submit: bool = False

    def configured(self) -> bool:
        return True

    def check_credentials(self) -> str | None:
        return None

    def submit(self, request: SubmitRequest) -> str:
        self.submits += 1
        if self.unavailable_submits:
            self.unavailable_submits -= 1
            raise SupplierUnavailable("Braket is throttling", retry_after=2)
        if self.refuse_submit:
            raise SupplierRejected("sv1: the device rejected the program (ValidationException)")
        task = self.tasks.setdefault(request.client_token, f"arn:task/{uuid.uuid4().hex[:8]}")
        if self.crash_after_submit:
            self.crash_after_submit = False
            raise RuntimeError("worker died after the supplier accepted the task")
        return task

    def poll(self, target: Target, task_id: str) -> TaskState:
        self.polls += 1
        if self.refuse_polls:
            raise SupplierRejected("The security token included in the request is expired")
        answer = self.script[min(self.polls, len(self.script)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def cancel(self, target: Target, task_id: str) -> None:
        self.cancelled.append(task_id)

    def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
        raise AssertionError("cloud mode never emulates")


RUNNING = TaskState(SupplierState.RUNNING, "RUNNING")
DONE = TaskState(
    SupplierState.COMPLETED,
    "COMPLETED",
    counts={"00": 60, "11": 40},
    execution_time_ms=812.0,
    queue_time_ms=1500.0,
)


@pytest.fixture
def cloud(
    services_env: Services, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[ScriptedSupplier], Services]]:
    """Services whose Braket is configured (mode cloud) and answered by a scripted supplier."""
    for name, value in {
        "QCOS_BRAKET_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00",
        "QCOS_BRAKET_SECRET_ACCESS_KEY": "not-a-secret",
        "QCOS_BRAKET_S3_BUCKET": "results-bucket",
        "QCOS_POLL_INITIAL_SECONDS": "1",
        "QCOS_POLL_MAX_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)

    def build(supplier: ScriptedSupplier) -> Services:
        return Services.build(Settings.from_env(os.environ), adapters={"braket": supplier})

    yield build


def only_task(supplier: ScriptedSupplier) -> str:
    (task,) = supplier.tasks.values()
    return task


def principal_of(svc: Services, make_user: Callable[..., Any]) -> Principal:
    return svc.accounts.authenticate(make_user().api_key)


def submit(svc: Services, who: Principal, **fields: Any) -> str:
    body = {"qasm": BELL, "device": "sv1", "shots": 100, **fields}
    return svc.jobs.submit_to_supplier(who, "braket", SupplierExecuteRequest(**body)).job_id


def run(svc: Services, who: Principal, job_id: str, **delivery: Any) -> None:
    message = JobMessage(who.user_id, job_id).encode()
    svc.jobs.run(message, Delivery(delivery.get("message_id", "m-1"), delivery.get("count", 1)))


def poll(svc: Services, who: Principal, job_id: str, seq: int) -> None:
    message = JobMessage(who.user_id, job_id, poll=seq).encode()
    svc.jobs.run(message, Delivery(f"p-{uuid.uuid4().hex[:6]}", 1))


def test_a_cloud_job_is_submitted_once_polled_with_delay_and_completed_with_the_suppliers_counts(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a configured supplier that runs the task, then finishes it
    supplier = ScriptedSupplier(script=[RUNNING, DONE])
    svc = cloud(supplier)
    svc.storage.queue(JOBS_QUEUE).clear_messages()  # other tests' messages: peek sees 32
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)

    # when the worker takes the job
    run(svc, who, job_id)

    # then the task is submitted under the job's id and the job waits, processing
    job = svc.jobs._repo.get(who.user_id, job_id)  # noqa: SLF001
    assert job is not None and job.status is JobStatus.PROCESSING
    assert supplier.submits == 1 and job.supplier_job_id == only_task(supplier)
    assert job.poll_seq == 1 and job.mode == "cloud"
    # and the first poll arrives on the queue only after its delay
    assert _poll_numbers_visible(svc, job_id) == []
    time.sleep(1.2)
    assert 1 in _poll_numbers_visible(svc, job_id)

    # when the first poll finds it running, a duplicate of that poll comes, then the next poll
    poll(svc, who, job_id, 1)
    poll(svc, who, job_id, 1)
    assert supplier.polls == 1  # the duplicate did not poll
    poll(svc, who, job_id, 2)

    # then the job completed with the supplier's counts, labelled as run in the cloud
    result = svc.jobs.results(who, job_id)
    assert result.counts == {"00": 60, "11": 40}
    meta = result.metadata
    assert (meta.supplier, meta.backend, meta.mode) == ("braket", "braket_sv1", "cloud")
    assert meta.supplier_job_id == only_task(supplier)
    assert meta.execution_time_ms == 812.0 and meta.queue_time_ms == 1500.0


def test_a_worker_that_dies_after_submitting_is_replaced_and_the_supplier_has_one_task(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a worker that dies right after the supplier accepted the task
    supplier = ScriptedSupplier(script=[DONE], crash_after_submit=True)
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    with pytest.raises(RuntimeError):
        run(svc, who, job_id, message_id="m-7", count=1)

    # when the queue redelivers the same message
    run(svc, who, job_id, message_id="m-7", count=2)
    poll(svc, who, job_id, 1)

    # then the redelivery found the same task: one task, and the job completed
    assert supplier.submits == 2 and len(supplier.tasks) == 1
    assert svc.jobs.status(who, job_id).status == "completed"


def test_an_unreachable_supplier_is_polled_again_later_not_failed(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a supplier that answers 503 once
    supplier = ScriptedSupplier(script=[SupplierUnavailable("Braket throttled"), DONE])
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)

    # when the poll meets the outage, then the next poll
    poll(svc, who, job_id, 1)
    assert svc.jobs.status(who, job_id).status == "processing"
    poll(svc, who, job_id, 2)

    # then the job completed
    assert svc.jobs.status(who, job_id).status == "completed"


def test_a_task_the_supplier_failed_fails_the_job_with_its_reason(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a task the supplier fails
    failed = TaskState(SupplierState.FAILED, "FAILED", reason="Circuit too deep for device")
    svc = cloud(ScriptedSupplier(script=[failed]))
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)

    # when it is polled
    poll(svc, who, job_id, 1)

    # then the job failed with a reason the user can read
    status = svc.jobs.status(who, job_id)
    assert status.status == "failed" and status.error is not None
    assert status.error.error_code == "SUPPLIER_JOB_FAILED"
    assert "Circuit too deep for device" in status.error.detail


def test_a_refused_submission_fails_the_job_without_retrying(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a supplier that refuses the program
    supplier = ScriptedSupplier(refuse_submit=True)
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)

    # when the worker takes the job (and returns normally: nothing to retry)
    run(svc, who, job_id)

    # then the job failed with the supplier's reason
    status = svc.jobs.status(who, job_id)
    assert status.status == "failed" and status.error is not None
    assert status.error.error_code == "SUPPLIER_ERROR"
    assert "ValidationException" in status.error.detail


def test_cancelling_a_running_cloud_job_cancels_the_suppliers_task(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a job running at the supplier
    supplier = ScriptedSupplier(script=[RUNNING])
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)

    # when the user cancels it
    answer = svc.jobs.cancel(who, job_id)

    # then the supplier was asked to cancel the task, and a later poll changes nothing
    assert answer.status == "cancelled"
    assert supplier.cancelled == [only_task(supplier)]
    polls = supplier.polls  # one, to see the task did not finish first
    poll(svc, who, job_id, 1)
    assert supplier.polls == polls
    assert svc.jobs.status(who, job_id).status == "cancelled"


def test_a_task_past_the_deadline_is_cancelled_and_the_job_fails(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a task accepted long ago that is still queued
    supplier = ScriptedSupplier(script=[TaskState(SupplierState.QUEUED, "QUEUED")])
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)
    svc.jobs._repo.update_unchecked(  # noqa: SLF001
        who.user_id, job_id, {"created_at": "2020-01-01T00:00:00.000000Z"}
    )

    # when it is polled
    poll(svc, who, job_id, 1)

    # then the task was cancelled and the job failed with the reason
    status = svc.jobs.status(who, job_id)
    assert status.status == "failed" and status.error is not None
    assert status.error.error_code == "SUPPLIER_TIMEOUT"
    assert supplier.cancelled == [only_task(supplier)]


def test_a_cloud_job_whose_poll_chain_died_is_found_by_recovery_and_polled_again(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a submitted job whose poll messages were lost long ago
    supplier = ScriptedSupplier(script=[DONE])
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)
    long_ago = "2020-01-01T00:00:00.000000Z"
    svc.jobs._repo.update_unchecked(  # noqa: SLF001
        who.user_id, job_id, {"claimed_at": long_ago, "enqueued_at": long_ago}
    )

    # when the recovery timer runs and its message is delivered
    assert svc.jobs.recover() >= 1
    run(svc, who, job_id, message_id="recovered")

    # then polling restarted without a second submission
    job = svc.jobs._repo.get(who.user_id, job_id)  # noqa: SLF001
    assert job is not None and job.poll_seq == 2 and supplier.submits == 1
    poll(svc, who, job_id, 2)
    assert svc.jobs.status(who, job_id).status == "completed"


def test_a_job_that_is_neither_queued_nor_at_a_supplier_cannot_be_cancelled(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a cloud job that completed
    svc = cloud(ScriptedSupplier(script=[DONE]))
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)
    poll(svc, who, job_id, 1)

    # when the user cancels it, then 409
    with pytest.raises(Conflict) as caught:
        svc.jobs.cancel(who, job_id)
    assert caught.value.error_code == "JOB_NOT_CANCELLABLE"


def test_two_users_with_the_same_job_id_get_two_supplier_tasks(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given two users who both call their job "bell"
    supplier = ScriptedSupplier(script=[DONE])
    svc = cloud(supplier)
    first, second = principal_of(svc, make_user), principal_of(svc, make_user)
    # when both are submitted to the supplier
    for who in (first, second):
        run(svc, who, submit(svc, who, job_id="bell"))
    # then each has a task of its own
    tasks = [svc.jobs._repo.get(w.user_id, "bell").supplier_job_id for w in (first, second)]  # type: ignore[union-attr]  # noqa: SLF001
    assert supplier.submits == 2 and len(set(tasks)) == 2


def test_cancelling_a_task_that_already_finished_keeps_its_counts_and_answers_409(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a task that finished at the supplier before anyone polled it
    supplier = ScriptedSupplier(script=[DONE])
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)
    # when the user cancels it
    with pytest.raises(Conflict) as caught:
        svc.jobs.cancel(who, job_id)
    # then it is 409, and the job completed with the supplier's counts
    assert caught.value.error_code == "JOB_NOT_CANCELLABLE"
    assert svc.jobs.results(who, job_id).counts == DONE.counts


def test_a_supplier_that_cannot_take_the_task_now_gets_it_again_later(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a supplier that throttles the first submission
    supplier = ScriptedSupplier(script=[DONE], unavailable_submits=1)
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    # when the worker takes the job: it returns normally, and the job is queued again
    run(svc, who, job_id, message_id="m-1")
    assert svc.jobs.status(who, job_id).status == "queued"
    # then the delayed message submits it
    run(svc, who, job_id, message_id="m-2")
    poll(svc, who, job_id, 1)
    assert supplier.submits == 2 and len(supplier.tasks) == 1
    assert svc.jobs.status(who, job_id).status == "completed"


def test_polls_refused_by_the_supplier_keep_the_job_running_even_on_the_last_delivery(
    cloud: Callable[[ScriptedSupplier], Services], make_user: Callable[..., Any]
) -> None:
    # given a running task whose polls the supplier refuses (an expired credential)
    supplier = ScriptedSupplier(script=[RUNNING], refuse_polls=True)
    svc = cloud(supplier)
    who = principal_of(svc, make_user)
    job_id = submit(svc, who)
    run(svc, who, job_id)
    # when polls are refused, and a poll message fails on its last delivery
    poll(svc, who, job_id, 1)
    job = svc.jobs._repo.get(who.user_id, job_id)  # noqa: SLF001
    assert job is not None and job.status is JobStatus.PROCESSING and job.poll_seq == 2
    broken = JobMessage(who.user_id, job_id, poll=2).encode()
    tasks = svc.jobs._supplier_tasks  # noqa: SLF001

    def storage_down(message: JobMessage, job: Any) -> None:
        raise ConnectionError("storage unreachable")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(tasks, "poll", storage_down)
        with pytest.raises(ConnectionError):
            svc.jobs.run(broken, Delivery("p-last", 5))
    # then the job is still running, left to recovery, and the task was not abandoned
    assert svc.jobs.status(who, job_id).status == "processing"
    assert supplier.cancelled == []


def test_poll_delays_must_stay_below_the_stale_claim_age() -> None:
    from shared.config import SettingsError

    with pytest.raises(SettingsError, match="QCOS_POLL_MAX_SECONDS"):
        Settings.from_env({"QCOS_POLL_MAX_SECONDS": "900", "QCOS_STALE_CLAIM_SECONDS": "900"})


def _poll_numbers_visible(svc: Services, job_id: str) -> list[int]:
    peeked = svc.storage.queue(JOBS_QUEUE).peek_messages(max_messages=32)
    found = [JobMessage.decode(m.content) for m in peeked]
    return [m.poll for m in found if m.job_id == job_id and m.poll is not None]
