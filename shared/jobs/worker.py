"""The queue worker: one delivery of a `jobs` message at a time.

Every step is safe to repeat. A job is claimed with an ETag-guarded write naming the delivery
that claimed it (so a redelivery of the claiming message takes over from a dead worker, and a
duplicate leaves a live one alone), then run here (a circuit on Aer, a task by its runner) or
handed to its supplier (`SupplierTasks`); a poll message polls the supplier's task.

    queued --claim--> processing --> completed | failed
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

from shared import clock, telemetry
from shared.config import Settings
from shared.errors import ApiError
from shared.jobs.messages import Delivery, JobMessage, MalformedMessage
from shared.jobs.metering import Metering
from shared.jobs.models import CIRCUIT, Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.runs import Runs, TaskRunner, describe, failure, permanent
from shared.jobs.supplier_tasks import SupplierTasks
from shared.pricing.costs import FREE
from shared.storage import LOST, Lost, until_written

logger = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        metering: Metering,
        runs: Runs,
        supplier_tasks: SupplierTasks,
        tasks: Mapping[str, TaskRunner],
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._metering = metering
        self._runs = runs
        self._supplier_tasks = supplier_tasks
        self._tasks = tasks

    def run(self, body: str, delivery: Delivery) -> None:
        """Handle one delivery of a `jobs` message.

        A malformed message goes to `jobs-poison` at once. Terminal, cancelled and
        claimed-by-someone-else jobs are left alone. A permanent error fails the job; any other
        error is raised so the message is retried, and on the last delivery the job is first
        marked failed with the reason.
        """
        try:
            message = JobMessage.decode(body)
        except MalformedMessage as exc:
            logger.error("malformed message %s (%s): moved to poison", delivery.message_id, exc)
            self._repo.to_poison(body)
            return
        with telemetry.job_run(
            message.job_id,
            "run" if message.poll is None else "poll",
            message_id=delivery.message_id,
            delivery=delivery.dequeue_count,
        ) as span:
            try:
                job = self._handle(message, delivery, span)
            except Exception as exc:
                if permanent(exc):  # _execute recorded it on the job
                    logger.info("job %s failed: %s", message.job_id, type(exc).__name__)
                    span.set("job.outcome", JobStatus.FAILED.value)
                    return
                span.set("job.outcome", "retry")
                # A poll that keeps failing leaves the job to the recovery timer, which restarts
                # its polling: failing it would abandon a task the supplier is still running.
                last = delivery.dequeue_count >= self._settings.max_dequeue_count
                if last and message.poll is None:
                    self._fail_last_delivery(message, exc)
                raise
            # What the delivery left: completed, failed, processing (at a supplier), queued
            # (to submit again later), cancelled; "skipped" when there was nothing to do.
            span.set("job.outcome", job.status.value if job else "skipped")

    def _handle(self, message: JobMessage, delivery: Delivery, span: telemetry.Span) -> Job | None:
        """`run` for a well-formed message: the job as this delivery left it, None when it had
        nothing to do."""
        found = self._repo.get(message.user_id, message.job_id)
        if found is None:
            logger.warning("message for unknown job %s/%s", message.user_id, message.job_id)
            return None
        if found.status is JobStatus.COMPLETED:  # a crash may have come before its charge
            self._metering.charge(found)
            return None
        if message.poll is not None:
            polled = self._supplier_tasks.poll(message, found)
            if polled is not None:
                describe(span, polled)
            return polled
        job = self._claim(found, delivery)
        if job is None:
            return None
        describe(span, job)
        if job.kind != CIRCUIT:
            self._run_task(job)
            return job
        parsed = self._runs.load_circuit(job)
        if parsed is None:
            return job
        if job.supplier is None:
            self._runs.execute(job, parsed)
        else:
            self._supplier_tasks.run(job, parsed)
        return job

    def _claim(self, job: Job, delivery: Delivery) -> Job | None:
        """Claim `job` (as just read) for this delivery; None when there is nothing for it to
        do."""

        def attempt(n: int) -> Job | None | Lost:
            found = job if n == 0 else self._repo.get(job.user_id, job.job_id)
            if found is None or found.status.terminal:
                return None
            if found.status is JobStatus.PROCESSING and not self._claim_abandoned(found, delivery):
                return None
            now = clock.now_iso()
            claim = {
                "status": JobStatus.PROCESSING,
                "started_at": now,  # of this attempt
                "attempts": (found.attempts or 0) + 1,
                "shots_done": None,
                "claimed_at": now,
                "claim_message_id": delivery.message_id,
                "claim_dequeue_count": delivery.dequeue_count,
            }
            return found if self._repo.update(found, claim) else LOST

        return until_written(attempt, busy=_contended("claim", job.job_id))

    def _claim_abandoned(self, job: Job, delivery: Delivery) -> bool:
        """True when the worker holding `job` is gone.

        The queue redelivers a message only after its holder stopped renewing it, so a later
        delivery of the claiming message means the holder died. A claim older than the function
        timeout is abandoned whoever made it.
        """
        if job.claim_message_id == delivery.message_id and (job.claim_dequeue_count or 0) < (
            delivery.dequeue_count
        ):
            return True
        age = clock.utcnow() - clock.parse_iso(job.claimed_at or job.created_at)
        return age > timedelta(seconds=self._settings.stale_claim_seconds)

    def _run_task(self, job: Job) -> None:
        """Run a claimed task job with its kind's runner and complete it (free: it runs here).
        A runner's permanent error fails the job (and raises); other errors are retried."""
        runner = self._tasks.get(job.kind)
        if runner is None:  # a row written by a newer version of the app
            self._runs.fail(job, "UNKNOWN_JOB_KIND", f"This deployment cannot run {job.kind} jobs")
            return
        payload = self._repo.circuit_of(job)
        if payload is None:
            self._runs.fail(job, "REQUEST_MISSING", "The job's request was not found")
            return
        try:
            outcome = runner(job, payload)
        except ApiError as exc:
            if permanent(exc):
                self._runs.fail(job, exc.error_code, exc.detail)
            raise
        self._runs.record(
            job,
            self._runs.finished(
                job, outcome.result, FREE, outcome.execution_time_ms, outcome.method
            ),
        )

    def _fail_last_delivery(self, message: JobMessage, exc: Exception) -> None:
        reason = (
            f"The job could not be run after {self._settings.max_dequeue_count} attempts "
            f"({type(exc).__name__})"
        )

        def attempt(n: int) -> None | Lost:
            job = self._repo.get(message.user_id, message.job_id)
            if job is None or job.status.terminal:
                return None
            if not self._repo.update(job, failure("EXECUTION_FAILED", reason)):
                return LOST
            if job.supplier_job_id is None:
                self._runs.release(job)
            return None

        try:
            until_written(attempt, busy=_contended("fail", message.job_id))
        except Exception as store_exc:  # storage itself is down: the poison queue keeps the id
            logger.error("could not mark job %s failed: %s", message.job_id, store_exc)


def _contended(what: str, job_id: str) -> Callable[[], RuntimeError]:
    return lambda: RuntimeError(f"could not {what} job {job_id}: too much contention")
