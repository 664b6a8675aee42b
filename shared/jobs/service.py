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
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta

from shared import clock
from shared.accounts.service import Principal
from shared.accounts.tiers import TIERS
from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.errors import ApiError, Conflict, LimitExceeded, NotFound
from shared.jobs.estimates import Estimator
from shared.jobs.messages import Delivery, JobMessage, MalformedMessage
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.schemas import (
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

_MAX_CAS_ATTEMPTS = 8
_DETAIL_MAX = 1000
QUEUED_MESSAGE = "Job queued for processing"
_SYNC_CLAIM = "sync"


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
        """Accept a job for the queue.

        Raises `LimitExceeded`/`InvalidQasm`/`PayloadTooLarge` for a circuit or shot count
        over the caller's limits, `Conflict(DUPLICATE_JOB_ID)`, and lets storage outages
        through (503) when nothing was accepted.
        """
        parsed = self._check(principal, req)
        job = self._accept(principal, req, parsed, JobStatus.QUEUED)
        message = JobMessage(job.user_id, job.job_id)
        try:
            self._repo.enqueue(message)
            self._repo.update_unchecked(job.user_id, job.job_id, {"enqueued": True})
        except Exception as exc:  # accepted: the recovery timer enqueues it
            logger.warning("job %s accepted but not enqueued: %s", job.job_id, type(exc).__name__)
        return JobAccepted(
            job_id=job.job_id,
            status=JobStatus.QUEUED.value,
            message=QUEUED_MESSAGE,
            estimated_time_seconds=self._estimator.seconds(),
        )

    def execute_sync(self, principal: Principal, req: ExecuteRequest) -> SyncResult | JobAccepted:
        """Run a job in the request, bounded by `sync_timeout_seconds`.

        Returns the completed result, or (past the bound) the job to poll while it finishes in
        the background. A circuit Aer refuses fails the job and raises its error.
        """
        parsed = self._check(principal, req)
        job = self._accept(principal, req, parsed, JobStatus.PROCESSING)
        future = self._sync_pool.submit(self._execute, job, parsed)
        try:
            return future.result(timeout=self._settings.sync_timeout_seconds)
        except FutureTimeout:
            return JobAccepted(
                job_id=job.job_id,
                status=JobStatus.PROCESSING.value,
                message="Job is still running; poll its status",
                estimated_time_seconds=self._estimator.seconds(),
            )

    def _check(self, principal: Principal, req: ExecuteRequest) -> ParsedCircuit:
        tier = principal.tier
        if req.shots > tier.max_shots:
            raise LimitExceeded(
                f"shots {req.shots} exceeds the {tier.name} tier's limit of {tier.max_shots}",
                error_code="SHOT_LIMIT_EXCEEDED",
            )
        return parse_circuit(
            req.qasm, CircuitLimits.from_limits(self._settings.limits, tier.max_qubits)
        )

    def _accept(
        self, principal: Principal, req: ExecuteRequest, parsed: ParsedCircuit, status: JobStatus
    ) -> Job:
        now = clock.now_iso()
        job_id = req.job_id or str(uuid.uuid4())
        job = Job(
            user_id=principal.user_id,
            job_id=job_id,
            status=status,
            shots=req.shots,
            created_at=now,
            num_qubits=parsed.num_qubits,
            qasm_hash=parsed.qasm_hash,
            circuit_blob=f"{principal.user_id}/{job_id}-{secrets.token_hex(4)}.qasm",
        )
        if status is JobStatus.PROCESSING:  # claimed by this request
            job.enqueued = True
            job.started_at = job.claimed_at = now
            job.claim_message_id = _SYNC_CLAIM
            job.claim_dequeue_count = 0
        self._repo.put_circuit(job.circuit_blob, req.qasm)
        try:
            inserted = self._repo.insert(job)
        except Exception:
            self._repo.delete_circuit_quietly(job.circuit_blob)
            raise
        if not inserted:
            self._repo.delete_circuit_quietly(job.circuit_blob)
            raise Conflict(
                f"You already have a job with id {job_id}", error_code="DUPLICATE_JOB_ID"
            )
        logger.info("job %s accepted for %s (key %s)", job_id, job.user_id, principal.key_id)
        return job

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
        except ApiError as exc:  # permanent: _execute recorded it on the job
            logger.info("job %s failed: %s", message.job_id, exc.error_code)
        except Exception as exc:
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

    def _execute(self, job: Job, parsed: ParsedCircuit) -> SyncResult:
        """Run a claimed job on Aer, store its result and complete it."""
        try:
            outcome = aer.run(
                parsed,
                job.shots,
                statevector_max_qubits=self._settings.limits.statevector_max_qubits,
            )
        except ApiError as exc:
            self._fail(job, exc.error_code, exc.detail)
            raise
        metadata = ResultMetadata(
            shots=job.shots,
            backend=job.backend,
            execution_time_ms=round(outcome.execution_time_ms, 3),
            num_qubits=outcome.num_qubits,
            num_clbits=parsed.num_clbits,
            method=outcome.method,
            measured_all=outcome.measured_all,
            qasm_version=parsed.qasm_version,
            depth=parsed.depth,
            operations=parsed.operations,
        )
        self._repo.put_result(
            job.user_id, job.job_id, {"counts": outcome.counts, "metadata": metadata.model_dump()}
        )
        done = self._repo.update(
            job,
            {
                "status": JobStatus.COMPLETED,
                "completed_at": clock.now_iso(),
                "execution_time_ms": metadata.execution_time_ms,
                "method": outcome.method,
            },
        )
        if not done:
            logger.warning("job %s changed while running; its first completion stands", job.job_id)
        self._estimator.record(outcome.execution_time_ms)
        return SyncResult(
            job_id=job.job_id,
            status=JobStatus.COMPLETED.value,
            counts=outcome.counts,
            metadata=metadata,
        )

    def _fail(self, job: Job, code: str, detail: str) -> None:
        changes = {
            "status": JobStatus.FAILED,
            "completed_at": clock.now_iso(),
            "error_code": code,
            "error_detail": detail[:_DETAIL_MAX],
        }
        if not self._repo.update(job, changes):
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
                if self._repo.update(
                    job,
                    {
                        "status": JobStatus.FAILED,
                        "completed_at": clock.now_iso(),
                        "error_code": "EXECUTION_FAILED",
                        "error_detail": reason,
                    },
                ):
                    return
        except Exception as store_exc:  # storage itself is down: the poison queue keeps the id
            logger.error("could not mark job %s failed: %s", message.job_id, store_exc)

    # -- reads and cancel -----------------------------------------------------------------------

    def status(self, principal: Principal, job_id: str) -> JobStatusResponse:
        job = self._get(principal, job_id)
        result = None
        if job.status is JobStatus.COMPLETED:
            stored = self._repo.get_result(job.user_id, job.job_id)
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
        stored = (
            self._repo.get_result(job.user_id, job.job_id)
            if job.status is (JobStatus.COMPLETED)
            else None
        )
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
        job = self._repo.get(principal.user_id, job_id)
        if job is None:
            raise NotFound(f"Job {job_id} not found", error_code="JOB_NOT_FOUND")
        return job

    # -- recovery -------------------------------------------------------------------------------

    def recover(self) -> int:
        """Enqueue jobs accepted but never enqueued, and jobs whose claim was abandoned.

        Returns how many messages were sent. A duplicate message is harmless: the worker
        finds the job claimed or finished and leaves it.
        """
        now = clock.utcnow()
        unqueued_before = clock.iso(now - timedelta(seconds=self._settings.recover_after_seconds))
        stale_before = clock.iso(now - timedelta(seconds=self._settings.stale_claim_seconds))
        found = [
            *self._repo.find(JobStatus.QUEUED, enqueued=False, created_at__lt=unqueued_before),
            *self._repo.find(JobStatus.PROCESSING, claimed_at__lt=stale_before),
        ]
        for job in found:
            self._repo.enqueue(JobMessage(job.user_id, job.job_id))
            if not job.enqueued:
                self._repo.update_unchecked(job.user_id, job.job_id, {"enqueued": True})
            logger.warning("recovered job %s (%s)", job.job_id, job.status.value)
        return len(found)
