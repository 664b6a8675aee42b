"""A job at a cloud supplier, or at its emulation: submitted once (the job's client token makes a
resubmission find the same task), then polled by delayed queue messages, each carrying the poll
number so a duplicated message never forks the chain; cancelled at the supplier on request, and
failed past the task deadline. Emulated runs complete at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from shared import clock
from shared.circuits import ParsedCircuit
from shared.config import Settings
from shared.errors import ApiError, Conflict
from shared.jobs.estimates import Estimator
from shared.jobs.messages import JobMessage
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.runs import Outcome, Runs, client_token, permanent, run_metadata
from shared.suppliers import aer
from shared.suppliers.base import (
    Mode,
    SubmitRequest,
    SupplierState,
    SupplierUnavailable,
    Target,
    TaskState,
)
from shared.suppliers.catalog import supplier as find_supplier
from shared.suppliers.registry import SupplierRegistry

logger = logging.getLogger(__name__)


class SupplierTasks:
    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        suppliers: SupplierRegistry,
        estimator: Estimator,
        runs: Runs,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._suppliers = suppliers
        self._estimator = estimator
        self._runs = runs

    def run(self, job: Job, parsed: ParsedCircuit) -> None:
        """Emulated: run it here and complete it. Cloud: submit it (or find the task this job
        already created) and start polling. A permanent error fails the job (and raises)."""
        assert job.supplier is not None
        target = find_supplier(job.supplier).target(job.backend)
        try:
            if job.mode == Mode.EMULATED:
                run = self._suppliers.emulate(target, parsed, job.shots, self._runs.watch(job))
                self._estimator.record(run.execution_time_ms)
                metadata = run_metadata(
                    job, parsed, execution_time_ms=run.execution_time_ms, method=run.method
                )
                self._runs.complete(job, Outcome(run.counts, run.method, metadata), parsed)
                return
            task_id = job.supplier_job_id or self._suppliers.submit(
                SubmitRequest(client_token(job), target, parsed, job.shots)
            )
        except aer.RunStopped:
            logger.info("job %s: emulation stopped, the job was cancelled", job.job_id)
            return
        except SupplierUnavailable as exc:
            if job.mode == Mode.EMULATED:
                raise
            self._submit_later(job, exc)
            return
        except ApiError as exc:
            if permanent(exc):
                self._runs.fail(job, exc.error_code, exc.detail)
            raise
        now = clock.now_iso()
        seq = (job.poll_seq or 0) + 1
        changes: dict[str, Any] = {"poll_seq": seq, "claimed_at": now}
        if job.supplier_job_id is None:
            changes |= {"supplier_job_id": task_id, "submitted_at": now}
            logger.info("job %s submitted to %s as %s", job.job_id, job.supplier, task_id)
        if self._repo.update(job, changes):
            self._schedule_poll(job, seq)
        else:  # another worker took the job over; it submits with the same token and polls
            logger.warning("job %s changed while being submitted; leaving it", job.job_id)

    def _submit_later(self, job: Job, exc: SupplierUnavailable) -> None:
        """The supplier could not take the task now: give the job back to the queue, delayed
        by the supplier's `Retry-After` (at least the first poll delay), rather than spending
        the message's few quick retries. Past the deadline the job fails instead."""
        if self._past_deadline(job):
            self._runs.fail(job, exc.error_code, f"{exc.detail} (gave up after the task deadline)")
            return
        delay = max(int(exc.headers.get("Retry-After", "0") or 0), 1)
        delay = min(max(delay, self._settings.suppliers.poll_initial_seconds), 900)
        if self._repo.update(job, {"status": JobStatus.QUEUED, "enqueued_at": clock.now_iso()}):
            logger.warning(
                "job %s: %s unavailable; submitting again in %d s", job.job_id, job.supplier, delay
            )
            try:
                self._repo.enqueue(JobMessage(job.user_id, job.job_id), delay_seconds=delay)
            except Exception as send_exc:  # the recovery timer sends it
                logger.warning("job %s: not re-enqueued: %s", job.job_id, type(send_exc).__name__)

    def _schedule_poll(self, job: Job, seq: int) -> None:
        """Send poll number `seq`, delayed: initial * 2^(seq-1) seconds, capped."""
        config = self._settings.suppliers
        delay = min(config.poll_initial_seconds * 2 ** min(seq - 1, 20), config.poll_max_seconds)
        try:
            self._repo.enqueue(JobMessage(job.user_id, job.job_id, poll=seq), delay_seconds=delay)
        except Exception as exc:  # the recovery timer restarts the polling of a silent job
            logger.warning("job %s: poll %d not sent: %s", job.job_id, seq, type(exc).__name__)

    def poll(self, message: JobMessage, job: Job) -> Job | None:
        """Poll the supplier's task of `job` (as just read) once: complete, fail or cancel the
        job, or poll again later. Returns the job as the poll left it; None when this message
        had nothing to poll.

        Only the message carrying the job's current `poll_seq` polls, so a duplicated message
        never forks the chain. An unreachable supplier is polled again later, like a task
        still running; past `task_deadline_hours` the task is cancelled and the job fails.
        """
        if job.status.terminal or job.supplier is None:
            return None
        if job.supplier_job_id is None or job.poll_seq != message.poll:
            return None  # a superseded poll chain
        target = find_supplier(job.supplier).target(job.backend)
        try:
            state: TaskState | None = self._suppliers.poll(target, job.supplier_job_id)
        except ApiError as exc:  # unreachable, or refusing us (a rotated key): ask again later
            logger.warning(
                "job %s: polling %s failed (%s); polling later",
                job.job_id,
                job.supplier,
                exc.detail,
            )
            state = None
        if state is not None and state.state.terminal:
            self.finish(job, target, state)
            return job
        if state is not None and state.state is SupplierState.UNKNOWN:
            logger.warning(
                "job %s: unknown %s status %r", job.job_id, job.supplier, state.raw_status
            )
        if self._past_deadline(job) and (
            self._cancel_task_quietly(job, target) or self._past_deadline(job, times=2)
        ):
            hours = self._settings.suppliers.task_deadline_hours
            self._runs.fail(
                job,
                "SUPPLIER_TIMEOUT",
                f"The supplier did not finish the task within {hours} hours; it was cancelled",
            )
            return job
        seq = (message.poll or 0) + 1
        if self._repo.update(job, {"poll_seq": seq, "claimed_at": clock.now_iso()}):
            self._schedule_poll(job, seq)
        return job

    def finish(self, job: Job, target: Target, state: TaskState) -> None:
        if state.state is SupplierState.CANCELLED:
            if self._repo.update(
                job, {"status": JobStatus.CANCELLED, "completed_at": clock.now_iso()}
            ):
                logger.info("job %s cancelled at %s", job.job_id, job.supplier)
                self._runs.release(job)
            return
        if state.state is SupplierState.FAILED:
            reason = state.reason or f"The supplier reported the task {state.raw_status}"
            self._runs.fail(job, "SUPPLIER_JOB_FAILED", f"{target.name}: {reason}")
            return
        parsed = self._runs.load_circuit(job)
        if parsed is None:
            return
        if state.counts is None:
            self._runs.fail(
                job, "SUPPLIER_JOB_FAILED", f"{target.name} completed the task without counts"
            )
            return
        metadata = run_metadata(
            job,
            parsed,
            execution_time_ms=state.execution_time_ms or 0.0,
            method=Mode.CLOUD.value,
            queue_time_ms=state.queue_time_ms,
        )
        self._runs.complete(job, Outcome(state.counts, Mode.CLOUD.value, metadata), parsed)

    def _past_deadline(self, job: Job, times: int = 1) -> bool:
        """True `times` task deadlines after the job was accepted."""
        since = clock.parse_iso(job.created_at)
        hours = self._settings.suppliers.task_deadline_hours * times
        return clock.utcnow() - since > timedelta(hours=hours)

    def _cancel_task_quietly(self, job: Job, target: Target) -> bool:
        """Ask the supplier to cancel the job's task; False (logged) when it could not."""
        assert job.supplier is not None and job.supplier_job_id is not None
        try:
            self._suppliers.cancel(target, job.supplier_job_id)
            return True
        except Exception as exc:
            logger.warning(
                "job %s: could not cancel task %s: %s",
                job.job_id,
                job.supplier_job_id,
                type(exc).__name__,
            )
            return False

    @staticmethod
    def running(job: Job) -> bool:
        return (
            job.status is JobStatus.PROCESSING
            and job.mode == Mode.CLOUD
            and job.supplier is not None
            and job.supplier_job_id is not None
        )

    def cancel(self, job: Job) -> None:
        """Cancel the job's task at the supplier. A task that finished first is recorded as
        finished (its counts are kept) and answered 409 JOB_NOT_CANCELLABLE."""
        assert job.supplier is not None and job.supplier_job_id is not None
        target = find_supplier(job.supplier).target(job.backend)
        try:
            self._suppliers.cancel(target, job.supplier_job_id)
        except ApiError as exc:
            if not permanent(exc):
                raise
            raise Conflict(
                f"{target.name} refused to cancel job {job.job_id}: {exc.detail}",
                error_code="JOB_NOT_CANCELLABLE",
            ) from exc
        try:
            state = self._suppliers.poll(target, job.supplier_job_id)
        except ApiError:
            return  # cannot tell; the cancel was accepted
        if state.state in (SupplierState.COMPLETED, SupplierState.FAILED):
            self.finish(job, target, state)
            raise Conflict(
                f"Job {job.job_id} finished at {target.name} before it could be cancelled",
                error_code="JOB_NOT_CANCELLABLE",
            )
