"""The job life cycle: submit, run (the queue worker), run in the request, cancel, read, recover.

Every step is safe to repeat. State moves only by ETag-guarded writes:

    queued --claim--> processing --> completed | failed
    queued --cancel--> cancelled

A job is accepted once its row exists (the circuit blob is written first, under a name of its
own, so a duplicate id never overwrites another job's circuit). If the enqueue after that fails,
the job is still accepted: the recovery timer enqueues rows left `enqueued = false`.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeGuard

from shared import clock
from shared.accounts.service import Principal
from shared.accounts.tiers import TIERS
from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.errors import ApiError, Conflict, LimitExceeded, NotFound, ServiceUnavailable
from shared.jobs.estimates import Estimator
from shared.jobs.messages import Delivery, JobMessage, MalformedMessage
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.schemas import (
    JOB_ID_PATTERN,
    ExecuteRequest,
    JobAccepted,
    JobCancelled,
    JobCounts,
    JobError,
    JobResults,
    JobStatusResponse,
    ResultMetadata,
    SyncResult,
)
from shared.suppliers import aer

logger = logging.getLogger(__name__)

_JOB_ID = re.compile(JOB_ID_PATTERN)
_MAX_CAS_ATTEMPTS = 8
_DETAIL_MAX = 1000
QUEUED_MESSAGE = "Job queued for processing"
_SYNC_CLAIM = "sync"


def _failure(code: str, detail: str) -> dict[str, Any]:
    """The fields that record a job as failed, with a bounded reason."""
    return {
        "status": JobStatus.FAILED,
        "completed_at": clock.now_iso(),
        "error_code": code,
        "error_detail": detail[:_DETAIL_MAX],
    }


def _permanent(exc: BaseException) -> TypeGuard[ApiError]:
    """The job's own fault (a refused circuit): retrying cannot help. 503s are transient."""
    return isinstance(exc, ApiError) and not isinstance(exc, ServiceUnavailable)


@dataclass(frozen=True)
class _Outcome:
    """A finished simulation, before it is recorded."""

    counts: dict[str, int]
    method: str
    metadata: ResultMetadata

    def stored(self) -> dict[str, Any]:
        return {"counts": self.counts, "metadata": self.metadata.model_dump()}

    def response(self, job: Job) -> SyncResult:
        return SyncResult(
            job_id=job.job_id,
            status=JobStatus.COMPLETED.value,
            counts=self.counts,
            metadata=self.metadata,
        )


@dataclass(frozen=True)
class Usage:
    jobs_today: int
    jobs_total: int


class JobService:
    def __init__(self, settings: Settings, repo: JobRepository, estimator: Estimator) -> None:
        self._settings = settings
        self._repo = repo
        self._estimator = estimator
        self._sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="execute-sync")
        # Circuits were checked against the owner's tier at submit; the worker re-parses under
        # the largest tier's qubit limit with the same operation and depth bounds.
        self._worker_limits = CircuitLimits.from_limits(
            settings.limits, max(t.max_qubits for t in TIERS.values())
        )

    # -- submit ---------------------------------------------------------------------------------

    def submit(self, principal: Principal, req: ExecuteRequest) -> JobAccepted:
        """Accept a job for the queue: circuit blob, then the row, then the message.

        Raises `LimitExceeded`/`InvalidQasm`/`PayloadTooLarge` for a circuit or shot count
        over the caller's limits, `Conflict(DUPLICATE_JOB_ID)`, and lets storage outages
        through (503) when nothing was accepted. Once the row exists the job is accepted: if
        the message cannot be sent, the row says so and the recovery timer sends it.
        """
        parsed = self._check(principal, req)
        job = self._new_job(principal, req, parsed)
        job.enqueued, job.enqueued_at = True, job.created_at  # one write fewer than flagging later
        self._repo.put_circuit(job.circuit_blob, req.qasm)
        self._insert(job, on_failure=lambda: self._repo.delete_circuit_quietly(job.circuit_blob))
        try:
            self._repo.enqueue(JobMessage(job.user_id, job.job_id))
        except Exception as exc:  # accepted: the recovery timer enqueues it
            logger.warning("job %s accepted but not enqueued: %s", job.job_id, type(exc).__name__)
            self._mark_not_enqueued(job)
        return JobAccepted(
            job_id=job.job_id,
            status=JobStatus.QUEUED.value,
            message=QUEUED_MESSAGE,
            estimated_time_seconds=self._estimator.seconds(),
        )

    def execute_sync(self, principal: Principal, req: ExecuteRequest) -> SyncResult | JobAccepted:
        """Run a job in the request, bounded by `sync_timeout_seconds`, and record it.

        The circuit runs first; a run that ends within the bound is recorded as a completed
        job in one row and one result blob (its circuit is kept as a hash only). Past the bound
        the job is recorded as running, with its circuit, and the job to poll is returned; the
        run completes it in the background (or, if this process dies, the stale-claim sweep
        hands it to the queue worker). A circuit Aer refuses is recorded as failed and its
        error raised. A duplicate job id is found when the job is recorded (409).
        """
        parsed = self._check(principal, req)
        job = self._new_job(principal, req, parsed)
        job.status = JobStatus.PROCESSING
        job.started_at = job.claimed_at = job.created_at
        job.claim_message_id, job.claim_dequeue_count = _SYNC_CLAIM, 0
        job.enqueued, job.enqueued_at = True, job.created_at  # no message: it runs right here
        future = self._sync_pool.submit(self._simulate, job, parsed)
        try:
            outcome = future.result(timeout=self._settings.sync_timeout_seconds)
        except FutureTimeout:
            self._repo.put_circuit(job.circuit_blob, req.qasm)
            self._insert(
                job, on_failure=lambda: self._repo.delete_circuit_quietly(job.circuit_blob)
            )
            future.add_done_callback(lambda done: self._finish_in_background(job, done))
            return JobAccepted(
                job_id=job.job_id,
                status=JobStatus.PROCESSING.value,
                message="Job is still running; poll its status",
                estimated_time_seconds=self._estimator.seconds(),
            )
        except Exception as exc:
            if not _permanent(exc):
                raise
            for name, value in _failure(exc.error_code, exc.detail).items():
                setattr(job, name, value)
            self._insert(job)
            raise
        self._repo.put_result(job.result_blob, outcome.stored())
        job.status = JobStatus.COMPLETED
        job.completed_at = clock.now_iso()
        job.execution_time_ms, job.method = outcome.metadata.execution_time_ms, outcome.method
        self._insert(job, on_failure=lambda: self._repo.delete_result_quietly(job.result_blob))
        return outcome.response(job)

    def _check(self, principal: Principal, req: ExecuteRequest) -> ParsedCircuit:
        tier = principal.tier
        if req.shots > tier.max_shots:
            raise LimitExceeded(
                f"shots {req.shots} exceeds the {tier.name} tier's limit of {tier.max_shots}",
                error_code="SHOT_LIMIT_EXCEEDED",
            )
        limits = self._settings.limits
        parsed = parse_circuit(req.qasm, CircuitLimits.from_limits(limits, tier.max_qubits))
        aer.check_runnable(
            parsed,
            req.shots,
            statevector_max_qubits=limits.statevector_max_qubits,
            max_run_seconds=limits.max_run_seconds,
        )
        return parsed

    def _new_job(self, principal: Principal, req: ExecuteRequest, parsed: ParsedCircuit) -> Job:
        job_id = req.job_id or str(uuid.uuid4())
        # Blob names of their own, so a duplicate job id never overwrites another job's blobs.
        stem = f"{principal.user_id}/{job_id}-{secrets.token_hex(4)}"
        return Job(
            user_id=principal.user_id,
            job_id=job_id,
            status=JobStatus.QUEUED,
            shots=req.shots,
            created_at=clock.now_iso(),
            num_qubits=parsed.num_qubits,
            qasm_hash=parsed.qasm_hash,
            circuit_blob=f"{stem}.qasm",
            result_blob=f"{stem}.json",
        )

    def _insert(self, job: Job, on_failure: Callable[[], None] | None = None) -> None:
        """Write a new job row; `on_failure` undoes what was written before it."""
        try:
            inserted = self._repo.insert(job)
        except Exception:
            if on_failure:
                on_failure()
            raise
        if not inserted:
            if on_failure:
                on_failure()
            raise Conflict(
                f"You already have a job with id {job.job_id}", error_code="DUPLICATE_JOB_ID"
            )
        logger.info("job %s recorded for %s (%s)", job.job_id, job.user_id, job.status.value)

    def _mark_not_enqueued(self, job: Job) -> None:
        try:
            self._repo.update_unchecked(job.user_id, job.job_id, {"enqueued": False})
        except Exception as exc:  # the backstop sweep of old queued jobs still finds it
            logger.warning("job %s: could not flag it for re-enqueue: %s", job.job_id, exc)

    def _finish_in_background(self, job: Job, done: Future[_Outcome]) -> None:
        try:
            self._complete(job, done.result())
        except Exception as exc:
            if _permanent(exc):
                self._fail(job, exc.error_code, exc.detail)
                return
            logger.exception(
                "job %s: could not record its result; the sweep will rerun it", job.job_id
            )

    # -- the worker -----------------------------------------------------------------------------

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
        try:
            job = self._claim(message, delivery)
            if job is None:
                return
            circuit = self._repo.get_circuit(job.circuit_blob)
            if circuit is None:
                self._fail(job, "CIRCUIT_MISSING", "The job's circuit was not found")
                return
            try:
                parsed = parse_circuit(circuit, self._worker_limits)
            except ApiError as exc:  # accepted under other limits: settings changed since
                self._fail(job, exc.error_code, exc.detail)
                return
            self._execute(job, parsed)
        except Exception as exc:
            if _permanent(exc):  # _execute recorded it on the job
                logger.info("job %s failed: %s", message.job_id, type(exc).__name__)
                return
            if delivery.dequeue_count >= self._settings.max_dequeue_count:
                self._fail_last_delivery(message, exc)
            raise

    def _claim(self, message: JobMessage, delivery: Delivery) -> Job | None:
        """Claim the job for this delivery; None when there is nothing for it to do."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            job = self._repo.get(message.user_id, message.job_id)
            if job is None:
                logger.warning("message for unknown job %s/%s", message.user_id, message.job_id)
                return None
            if job.status.terminal:
                return None
            if job.status is JobStatus.PROCESSING and not self._claim_abandoned(job, delivery):
                return None
            now = clock.now_iso()
            claimed = self._repo.update(
                job,
                {
                    "status": JobStatus.PROCESSING,
                    "started_at": job.started_at or now,
                    "claimed_at": now,
                    "claim_message_id": delivery.message_id,
                    "claim_dequeue_count": delivery.dequeue_count,
                },
            )
            if claimed:
                return job
        raise RuntimeError(f"could not claim job {message.job_id}: too much contention")

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

    def _simulate(self, job: Job, parsed: ParsedCircuit) -> _Outcome:
        """Run the circuit on Aer; raises `SimulationError` (permanent) for a refused circuit."""
        run = aer.run(
            parsed,
            job.shots,
            statevector_max_qubits=self._settings.limits.statevector_max_qubits,
        )
        self._estimator.record(run.execution_time_ms)
        metadata = ResultMetadata(
            shots=job.shots,
            backend=job.backend,
            execution_time_ms=round(run.execution_time_ms, 3),
            num_qubits=run.num_qubits,
            num_clbits=parsed.num_clbits,
            method=run.method,
            measured_all=run.measured_all,
            qasm_version=parsed.qasm_version,
            depth=parsed.depth,
            operations=parsed.operations,
        )
        return _Outcome(counts=run.counts, method=run.method, metadata=metadata)

    def _execute(self, job: Job, parsed: ParsedCircuit) -> None:
        """Run a claimed job and complete it; a refused circuit fails it (and raises)."""
        try:
            outcome = self._simulate(job, parsed)
        except ApiError as exc:
            if _permanent(exc):
                self._fail(job, exc.error_code, exc.detail)
            raise
        self._complete(job, outcome)

    def _complete(self, job: Job, outcome: _Outcome) -> None:
        """Store the result, then mark the claimed row completed (results exist first)."""
        self._repo.put_result(job.result_blob, outcome.stored())
        done = self._repo.update(
            job,
            {
                "status": JobStatus.COMPLETED,
                "completed_at": clock.now_iso(),
                "execution_time_ms": outcome.metadata.execution_time_ms,
                "method": outcome.method,
            },
        )
        if not done:
            logger.warning("job %s changed while running; its first completion stands", job.job_id)

    def _fail(self, job: Job, code: str, detail: str) -> None:
        if not self._repo.update(job, _failure(code, detail)):
            logger.warning("job %s changed before it could be marked failed", job.job_id)

    def _fail_last_delivery(self, message: JobMessage, exc: Exception) -> None:
        reason = (
            f"The job could not be run after {self._settings.max_dequeue_count} attempts "
            f"({type(exc).__name__})"
        )
        try:
            for _ in range(_MAX_CAS_ATTEMPTS):
                job = self._repo.get(message.user_id, message.job_id)
                if job is None or job.status.terminal:
                    return
                if self._repo.update(job, _failure("EXECUTION_FAILED", reason)):
                    return
        except Exception as store_exc:  # storage itself is down: the poison queue keeps the id
            logger.error("could not mark job %s failed: %s", message.job_id, store_exc)

    # -- reads and cancel -----------------------------------------------------------------------

    def status(self, principal: Principal, job_id: str) -> JobStatusResponse:
        job = self._get(principal, job_id)
        result = None
        if job.status is JobStatus.COMPLETED:
            stored = self._repo.get_result(job.result_blob)
            result = JobCounts(counts=stored["counts"]) if stored else None
        error = None
        if job.status is JobStatus.FAILED:
            error = JobError(error_code=job.error_code or "FAILED", detail=job.error_detail or "")
        return JobStatusResponse(
            job_id=job.job_id,
            status=job.status.value,
            result=result,
            error=error,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )

    def results(self, principal: Principal, job_id: str) -> JobResults:
        job = self._get(principal, job_id)
        stored = None
        if job.status is JobStatus.COMPLETED:
            stored = self._repo.get_result(job.result_blob)
        if stored is None:
            raise Conflict(
                f"Job {job_id} is {job.status.value}; results exist once it is completed",
                error_code="JOB_NOT_COMPLETE",
            )
        return JobResults(
            job_id=job.job_id,
            counts=stored["counts"],
            metadata=ResultMetadata.model_validate(stored["metadata"]),
        )

    def cancel(self, principal: Principal, job_id: str) -> JobCancelled:
        """Cancel a queued job; its message, if delivered later, finds it cancelled."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            job = self._get(principal, job_id)
            if job.status is JobStatus.CANCELLED:
                break
            if job.status is not JobStatus.QUEUED:
                raise Conflict(
                    f"Job {job_id} is {job.status.value} and can no longer be cancelled",
                    error_code="JOB_NOT_CANCELLABLE",
                )
            if self._repo.update(
                job, {"status": JobStatus.CANCELLED, "completed_at": clock.now_iso()}
            ):
                logger.info("job %s cancelled", job_id)
                break
        else:
            raise RuntimeError(f"could not cancel job {job_id}: too much contention")
        return JobCancelled(job_id=job_id, status=JobStatus.CANCELLED.value)

    def usage(self, user_id: str) -> Usage:
        midnight = clock.utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        return Usage(
            jobs_today=self._repo.count(user_id, created_since=clock.iso(midnight)),
            jobs_total=self._repo.count(user_id),
        )

    def _get(self, principal: Principal, job_id: str) -> Job:
        # An id no job can have is not sent to storage (which answers some with a 400).
        job = self._repo.get(principal.user_id, job_id) if _JOB_ID.match(job_id) else None
        if job is None:
            raise NotFound(f"Job {job_id} not found", error_code="JOB_NOT_FOUND")
        return job

    # -- recovery -------------------------------------------------------------------------------

    def recover(self) -> int:
        """Enqueue jobs that lost their message.

        - queued and flagged not enqueued (the send failed) for `recover_after_seconds`;
        - queued with no message sent for `stale_claim_seconds` (the process died between the
          row and the send, before it could flag the row);
        - processing under a claim older than `stale_claim_seconds` (a sync run whose process
          died, or a worker whose message is gone).

        Each is sent at most once per `stale_claim_seconds` (`enqueued_at` moves). Returns how
        many messages were sent. A duplicate message is harmless: the worker finds the job
        claimed or finished and leaves it.
        """
        now = clock.utcnow()
        unqueued_before = clock.iso(now - timedelta(seconds=self._settings.recover_after_seconds))
        stale_before = clock.iso(now - timedelta(seconds=self._settings.stale_claim_seconds))
        found = {
            (job.user_id, job.job_id): job
            for job in (
                *self._repo.find(JobStatus.QUEUED, enqueued=False, created_at__lt=unqueued_before),
                *self._repo.find(JobStatus.QUEUED, enqueued_at__lt=stale_before),
                *self._repo.find(
                    JobStatus.PROCESSING, claimed_at__lt=stale_before, enqueued_at__lt=stale_before
                ),
            )
        }
        for job in found.values():
            self._repo.enqueue(JobMessage(job.user_id, job.job_id))
            self._repo.update_unchecked(
                job.user_id, job.job_id, {"enqueued": True, "enqueued_at": clock.now_iso()}
            )
            logger.warning("recovered job %s (%s)", job.job_id, job.status.value)
        return len(found)
