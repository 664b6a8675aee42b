"""The job life cycle: submit, run (the queue worker), run in the request, cancel, read, recover.

Every step is safe to repeat. State moves only by ETag-guarded writes:

    queued --claim--> processing --> completed | failed
    queued --cancel--> cancelled

A job is accepted once its row exists (the circuit blob is written first, under a name of its
own, so a duplicate id never overwrites another job's circuit). If the enqueue after that fails,
the job is still accepted: the recovery timer enqueues rows left `enqueued = false`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeGuard

from shared import clock, telemetry
from shared.accounts.quota import HOLD_SECONDS, Hold, Quotas
from shared.accounts.service import Principal
from shared.accounts.tiers import TIERS
from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.errors import (
    ApiError,
    Conflict,
    LimitExceeded,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.jobs.estimates import Estimator
from shared.jobs.messages import Delivery, JobMessage, MalformedMessage
from shared.jobs.metering import FREE, Metering, cost_text
from shared.jobs.models import CIRCUIT, Job, JobStatus
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
    SupplierExecuteRequest,
    SyncResult,
    is_job_id,
)
from shared.ledger.budgets import BudgetHold
from shared.ledger.service import Cost, Ledger, amount
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
from shared.suppliers.fit import check_fits
from shared.suppliers.registry import SupplierRegistry

logger = logging.getLogger(__name__)

_MAX_CAS_ATTEMPTS = 8
_DETAIL_MAX = 1000
QUEUED_MESSAGE = "Job queued for processing"
_ANSWERS = {
    JobStatus.QUEUED: QUEUED_MESSAGE,
    JobStatus.PROCESSING: "Job is still running; poll its status",
}
_SYNC_CLAIM = "sync"
# The field a client may use to name the backend, per supplier (the QCOS Python client's names).
_BACKEND_FIELDS = {
    "azure_quantum": ("backend", "target"),
    "ibm_quantum": ("backend",),
    "braket": ("backend", "device"),
}


def _failure(code: str, detail: str) -> dict[str, Any]:
    """The fields that record a job as failed, with a bounded reason."""
    return {
        "status": JobStatus.FAILED,
        "completed_at": clock.now_iso(),
        "error_code": code,
        "error_detail": detail[:_DETAIL_MAX],
    }


def _describe(span: telemetry.Span, job: Job) -> None:
    """The job's kind and where it runs, on its run's span."""
    span.set("job.kind", job.kind)
    span.set("job.supplier", job.supplier or "local")
    span.set("job.backend", job.backend)
    span.set("job.mode", job.mode)


def _permanent(exc: BaseException) -> TypeGuard[ApiError]:
    """The job's own fault (a refused circuit): retrying cannot help. 503s are transient."""
    return isinstance(exc, ApiError) and not isinstance(exc, ServiceUnavailable)


_TOKEN_NAMESPACE = uuid.UUID("6f1d3c52-8e0b-4b8e-9a55-0c7f6b1e2d41")


def _ref(job: Job) -> str:
    """The job's name on its tenant's budget counters (budgets are per tenant, not per user):
    its row's own (`quota_hold` holds the row's nonce), so a refused request that reused the
    job's id can never close the job's hold."""
    return f"{job.user_id}:{job.quota_hold or job.job_id}"


def client_token(job: Job) -> str:
    """The job's idempotency key at a supplier: stable for the row, distinct for two users (or
    two rows) with the same job id, and safe in every supplier's token field (a UUID)."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{job.user_id}/{job.job_id}/{job.created_at}"))


def _metadata(
    job: Job,
    parsed: ParsedCircuit,
    *,
    execution_time_ms: float,
    method: str,
    queue_time_ms: float | None = None,
) -> ResultMetadata:
    """A result's metadata. The queue time, unless the supplier reported one, runs from
    acceptance until a worker claimed the job (0 for a run in the request)."""
    if queue_time_ms is None and job.started_at:
        waited = clock.parse_iso(job.started_at) - clock.parse_iso(job.created_at)
        queue_time_ms = max(waited.total_seconds() * 1000.0, 0.0)
    return ResultMetadata(
        shots=job.shots,
        backend=job.backend,
        execution_time_ms=round(execution_time_ms, 3),
        num_qubits=parsed.num_qubits,
        num_clbits=parsed.num_clbits,
        method=method,
        measured_all=not aer.has_measurement(parsed.circuit),
        qasm_version=parsed.qasm_version,
        depth=parsed.depth,
        operations=parsed.operations,
        supplier=job.supplier,
        mode=job.mode,
        supplier_job_id=job.supplier_job_id,
        queue_time_ms=None if queue_time_ms is None else round(queue_time_ms, 3),
    )


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
class TaskOutcome:
    """What a task runner returns: the result to store, and how long the work took."""

    result: dict[str, Any]
    execution_time_ms: float
    method: str


# Runs a claimed job of a kind other than a circuit, from its payload; raises a permanent
# `ApiError` to fail the job, anything else to have the delivery retried.
TaskRunner = Callable[[Job, str], TaskOutcome]


@dataclass(frozen=True)
class Usage:
    jobs_today: int
    jobs_total: int


class JobService:
    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        estimator: Estimator,
        suppliers: SupplierRegistry,
        quotas: Quotas,
        ledger: Ledger,
        tasks: Mapping[str, TaskRunner] | None = None,
    ) -> None:
        self._settings = settings
        self._tasks = dict(tasks or {})
        self._repo = repo
        self._estimator = estimator
        self._suppliers = suppliers
        self._quotas = quotas
        self._ledger = ledger
        self._metering = Metering(settings, repo, ledger)
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
        return self._accept(principal, self._new_job(principal, req, parsed), req.qasm)

    def submit_to_supplier(
        self, principal: Principal, supplier_id: str, req: SupplierExecuteRequest
    ) -> JobAccepted:
        """Accept a job for a supplier's backend (run in the cloud or emulated, by settings).

        Raises `NotFound` (SUPPLIER_NOT_FOUND, BACKEND_NOT_FOUND), `ValidationFailed` when the
        backend is named by another supplier's field, `CircuitDoesNotFit` (400) when the
        circuit cannot run on the backend, and what `submit` raises.
        """
        info = find_supplier(supplier_id)
        field_name, backend = req.backend_field
        if field_name not in _BACKEND_FIELDS[info.id]:
            allowed = " or ".join(f"`{n}`" for n in _BACKEND_FIELDS[info.id])
            raise ValidationFailed(
                f"{info.name} takes the backend as {allowed}, not `{field_name}`"
            )
        target = info.target(backend)
        mode = self._suppliers.mode(info.id)
        execute = req.as_execute()
        parsed = self.parse(principal, execute)
        check_fits(target, parsed, execute.shots, mode=mode, limits=self._settings.limits)
        job = self._new_job(principal, execute, parsed)
        job.supplier, job.backend, job.mode = info.id, target.name, mode.value
        if mode is Mode.CLOUD:  # emulated runs cost nothing
            estimate = self._metering.cost(job, parsed)
            job.estimated_cost = amount(estimate.cost)
            # held atomically against the tenant's and project's budgets until it is charged
            budget = self._ledger.reservations.reserve(
                principal.tenant, job.project, estimate.cost, estimate.currency, ref=_ref(job)
            )
            job.budget_hold = budget.encode() if budget is not None else None
        return self._accept(principal, job, execute.qasm)

    def submit_task(
        self,
        principal: Principal,
        kind: str,
        payload: str,
        *,
        backend: str,
        shots: int = 0,
        job_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> JobAccepted:
        """Accept a job of `kind` (a registered task runner) for the queue, like a circuit:
        today's quota, the payload blob, the row, the message. Raises what `submit` raises."""
        if kind not in self._tasks:
            raise ValueError(f"no task runner for {kind!r}")
        job = self._new_row(
            principal, job_id, shots, tags, payload="request.json", backend=backend, kind=kind
        )
        return self._accept(principal, job, payload)

    def _accept(self, principal: Principal, job: Job, qasm: str) -> JobAccepted:
        """Reserve a job of today's quota, then the row (with its circuit, or the circuit's
        blob first when large) and the message; the job is accepted once the row is (before
        that, a failure gives the reservation back)."""
        try:
            hold = self._reserve(principal, job)
        except Exception:
            self._give_back(job, None)  # the budget held for it
            raise
        job.enqueued, job.enqueued_at = True, job.created_at  # one write fewer than flagging later
        try:
            self._repo.keep_circuit(job, qasm)
            self._insert(job)
        except Exception:
            self._repo.drop_circuit_quietly(job)
            self._give_back(job, hold)
            raise
        self._quotas.accepted(hold)
        try:
            self._repo.enqueue(JobMessage(job.user_id, job.job_id))
        except Exception as exc:  # accepted: the recovery timer enqueues it
            logger.warning("job %s accepted but not enqueued: %s", job.job_id, type(exc).__name__)
            self._mark_not_enqueued(job)
        return self._answer(job)

    def accepted(self, principal: Principal, job_id: str, kind: str = CIRCUIT) -> JobAccepted:
        """The submit's answer for the caller's job `job_id` of `kind`, as the job stands now
        (for a retry of the request that made it). Raises `NotFound` when there is none."""
        return self._answer(self._get(principal, job_id, kind))

    def _answer(self, job: Job) -> JobAccepted:
        """What a submit answers for `job`: its status, and how long it should take."""
        waiting = job.status in (JobStatus.QUEUED, JobStatus.PROCESSING)
        return JobAccepted(
            job_id=job.job_id,
            status=job.status.value,
            message=_ANSWERS.get(job.status, f"Job is {job.status.value}"),
            estimated_time_seconds=self._estimator.seconds() if waiting else 0,
        )

    def _reserve(self, principal: Principal, job: Job) -> Hold | None:
        """Reserve one of today's jobs for `job` (nothing for an unlimited tier)."""
        hold = self._quotas.reserve(principal.user_id, principal.tier, ref=str(job.quota_hold))
        job.quota_day = hold.day if hold is not None else None
        return hold

    def _give_back(self, job: Job, hold: Hold | None) -> None:
        """Give back what was reserved for a job whose row was never written: its quota hold
        and its budget hold. Logged, never raised: what cannot be given back now, the quota's
        sweep gives back."""
        try:
            self._quotas.release_hold(hold)
        except Exception as exc:
            logger.warning("quota hold not given back now: %s", type(exc).__name__)
        self._release_budget(job)

    def _release_budget(self, job: Job) -> None:
        """Give back the budget held for a cloud job that never ran at its supplier (once)."""
        if not job.budget_hold:
            return
        try:
            self._ledger.reservations.release(BudgetHold.decode(job.budget_hold), _ref(job))
        except Exception as exc:
            logger.warning("job %s: budget not given back: %s", job.job_id, type(exc).__name__)

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
        hold = self._reserve(principal, job)
        with telemetry.job_run(job.job_id, "run-sync") as span:
            _describe(span, job)
            try:
                answer = self._run_sync(job, parsed, req.qasm)
            except ApiError as exc:
                if job.etag is None:  # no row: the reservation goes back
                    self._give_back(job, hold)
                if _permanent(exc):  # recorded failed, or refused before it was recorded
                    span.set("job.outcome", job.status.value if job.etag else "rejected")
                raise
            except Exception:
                if job.etag is None:
                    self._give_back(job, hold)
                raise
            self._quotas.accepted(hold)
            span.set("job.outcome", answer.status)
            return answer

    def _run_sync(self, job: Job, parsed: ParsedCircuit, qasm: str) -> SyncResult | JobAccepted:
        """Run `job` here; a run within the bound is recorded completed in one row write
        (its result and charge in the row), then charged. Past the bound the job is recorded
        running, with its circuit, and finished in the background."""
        job.status = JobStatus.PROCESSING
        job.started_at = job.claimed_at = job.created_at
        job.claim_message_id, job.claim_dequeue_count = _SYNC_CLAIM, 0
        job.enqueued, job.enqueued_at = True, job.created_at  # no message: it runs right here
        job.owed = True  # no message backs it: the timer charges it if this process dies
        # The run and its completion keep the request's log fields and span (a copy each).
        future = self._sync_pool.submit(contextvars.copy_context().run, self._simulate, job, parsed)
        try:
            outcome = future.result(timeout=self._settings.sync_timeout_seconds)
        except FutureTimeout:
            self._repo.keep_circuit(job, qasm)
            self._insert(job, on_failure=lambda: self._repo.drop_circuit_quietly(job))
            finish = contextvars.copy_context()
            future.add_done_callback(
                lambda done: finish.run(self._finish_in_background, job, parsed, done)
            )
            return self._answer(job)
        except Exception as exc:
            if not _permanent(exc):
                raise
            for name, value in _failure(exc.error_code, exc.detail).items():
                setattr(job, name, value)
            job.owed = None
            self._insert(job)
            self._release(job)
            raise
        changes = self._completion(job, outcome, parsed)
        for name, value in changes.items():
            setattr(job, name, value)
        self._insert(job, on_failure=lambda: self._repo.drop_result_quietly(job))
        self._metering.charge(job)
        return outcome.response(job)

    def parse(self, principal: Principal, req: ExecuteRequest) -> ParsedCircuit:
        """The circuit, checked against the caller's tier (shots, qubits) and the limits."""
        tier = principal.tier
        if req.shots > tier.max_shots:
            raise LimitExceeded(
                f"shots {req.shots} exceeds the {tier.name} tier's limit of {tier.max_shots}",
                error_code="SHOT_LIMIT_EXCEEDED",
            )
        limits = self._settings.limits
        return parse_circuit(req.qasm, CircuitLimits.from_limits(limits, tier.max_qubits))

    def create_child(
        self,
        user_id: str,
        job_id: str,
        *,
        supplier: str | None,
        backend: str,
        circuit_blob: str,
        shots: int,
        num_qubits: int,
        qasm_hash: str,
        tenant: str | None = None,
    ) -> Job:
        """The job `job_id` of a network job's run (made now unless it exists): a job like any
        other, on a circuit blob its network job owns, marked enqueued without a message (the
        network job runs it with `run_child`; the recovery timer, if that never happens)."""
        now = clock.now_iso()
        job = Job(
            user_id=user_id,
            job_id=job_id,
            status=JobStatus.QUEUED,
            shots=shots,
            created_at=now,
            backend=backend,
            num_qubits=num_qubits,
            qasm_hash=qasm_hash,
            circuit_blob=circuit_blob,
            result_blob=f"{user_id}/{job_id}-{secrets.token_hex(4)}.json",
            enqueued=True,
            enqueued_at=now,
            tenant=tenant,
        )
        if supplier is not None:
            job.supplier, job.mode = supplier, self._suppliers.mode(supplier).value
        if self._repo.insert(job):
            return job
        found = self._repo.get(user_id, job_id)  # made by an earlier delivery of the activity
        assert found is not None
        return found

    def run_child(self, user_id: str, job_id: str) -> Job:
        """Run a network job's run here, as the queue worker would (emulated and local runs
        complete; a cloud task is submitted and polled by the queue). When it cannot run now,
        it is handed to the queue, which retries it. Returns the job as it stands after."""
        message = JobMessage(user_id, job_id)
        try:
            self.run(message.encode(), Delivery(message_id=f"network-{job_id}", dequeue_count=1))
        except Exception as exc:
            logger.warning("job %s: not run here (%s); queued", job_id, type(exc).__name__)
            self._repo.enqueue(message)
        job = self._repo.get(user_id, job_id)
        assert job is not None
        return job

    def _check(self, principal: Principal, req: ExecuteRequest) -> ParsedCircuit:
        """`_parse`, and the local simulator can run it within `max_run_seconds`."""
        parsed = self.parse(principal, req)
        limits = self._settings.limits
        aer.check_runnable(
            parsed,
            req.shots,
            statevector_max_qubits=limits.statevector_max_qubits,
            max_run_seconds=limits.max_run_seconds,
        )
        return parsed

    def _new_job(self, principal: Principal, req: ExecuteRequest, parsed: ParsedCircuit) -> Job:
        return self._new_row(
            principal,
            req.job_id,
            req.shots,
            req.tags,
            payload="qasm",
            num_qubits=parsed.num_qubits,
            qasm_hash=parsed.qasm_hash,
        )

    @staticmethod
    def _new_row(
        principal: Principal,
        job_id: str | None,
        shots: int,
        tags: Mapping[str, str] | None,
        *,
        payload: str,
        **fields: Any,
    ) -> Job:
        """A new queued job of the caller's; its payload blob is named `<stem>.<payload>`."""
        job_id = job_id or str(uuid.uuid4())
        # Blob names of their own, so a duplicate job id never overwrites another job's blobs;
        # the same nonce names the job's hold on the quota.
        nonce = secrets.token_hex(4)
        stem = f"{principal.user_id}/{job_id}-{nonce}"
        return Job(
            user_id=principal.user_id,
            job_id=job_id,
            status=JobStatus.QUEUED,
            shots=shots,
            created_at=clock.now_iso(),
            circuit_blob=f"{stem}.{payload}",
            result_blob=f"{stem}.json",
            tenant=principal.tenant or None,
            tags=json.dumps(dict(tags), sort_keys=True) if tags else None,
            quota_hold=f"{job_id}.{nonce}",
            **fields,
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

    def _finish_in_background(
        self, job: Job, parsed: ParsedCircuit, done: Future[_Outcome]
    ) -> None:
        try:
            self._complete(job, done.result(), parsed)
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
        with telemetry.job_run(
            message.job_id,
            "run" if message.poll is None else "poll",
            message_id=delivery.message_id,
            delivery=delivery.dequeue_count,
        ) as span:
            try:
                job = self._handle(message, delivery, span)
            except Exception as exc:
                if _permanent(exc):  # _execute recorded it on the job
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
            polled = self._poll(message, found)
            if polled is not None:
                _describe(span, polled)
            return polled
        job = self._claim(found, delivery)
        if job is None:
            return None
        _describe(span, job)
        if job.kind != CIRCUIT:
            self._run_task(job)
            return job
        parsed = self._load_circuit(job)
        if parsed is None:
            return job
        if job.supplier is None:
            self._execute(job, parsed)
        else:
            self._run_on_supplier(job, parsed)
        return job

    def _claim(self, job: Job, delivery: Delivery) -> Job | None:
        """Claim `job` (as just read) for this delivery; None when there is nothing for it to
        do."""
        for _ in range(_MAX_CAS_ATTEMPTS):
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
            found = self._repo.get(job.user_id, job.job_id)  # another writer came first
            if found is None:
                return None
            job = found
        raise RuntimeError(f"could not claim job {job.job_id}: too much contention")

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

    def _load_circuit(self, job: Job) -> ParsedCircuit | None:
        """The claimed job's circuit, parsed; None (and the job failed) when it cannot be."""
        circuit = self._repo.circuit_of(job)
        if circuit is None:
            self._fail(job, "CIRCUIT_MISSING", "The job's circuit was not found")
            return None
        try:
            return parse_circuit(circuit, self._worker_limits)
        except ApiError as exc:  # accepted under other limits: settings changed since
            self._fail(job, exc.error_code, exc.detail)
            return None

    def _simulate(self, job: Job, parsed: ParsedCircuit) -> _Outcome:
        """Run the circuit on Aer; raises `SimulationError` (permanent) for a refused circuit."""
        run = aer.run(
            parsed,
            job.shots,
            statevector_max_qubits=self._settings.limits.statevector_max_qubits,
        )
        self._estimator.record(run.execution_time_ms)
        metadata = _metadata(
            job, parsed, execution_time_ms=run.execution_time_ms, method=run.method
        )
        return _Outcome(counts=run.counts, method=run.method, metadata=metadata)

    # -- suppliers ------------------------------------------------------------------------------

    def _run_on_supplier(self, job: Job, parsed: ParsedCircuit) -> None:
        """Emulated: run it here and complete it. Cloud: submit it (or find the task this job
        already created) and start polling. A permanent error fails the job (and raises)."""
        assert job.supplier is not None
        target = find_supplier(job.supplier).target(job.backend)
        try:
            if job.mode == Mode.EMULATED:
                run = self._suppliers.emulate(target, parsed, job.shots)
                self._estimator.record(run.execution_time_ms)
                metadata = _metadata(
                    job, parsed, execution_time_ms=run.execution_time_ms, method=run.method
                )
                self._complete(job, _Outcome(run.counts, run.method, metadata), parsed)
                return
            task_id = job.supplier_job_id or self._suppliers.submit(
                SubmitRequest(client_token(job), target, parsed, job.shots)
            )
        except SupplierUnavailable as exc:
            if job.mode == Mode.EMULATED:
                raise
            self._submit_later(job, exc)
            return
        except ApiError as exc:
            if _permanent(exc):
                self._fail(job, exc.error_code, exc.detail)
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
            self._fail(job, exc.error_code, f"{exc.detail} (gave up after the task deadline)")
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

    def _poll(self, message: JobMessage, job: Job) -> Job | None:
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
            self._finish_task(job, target, state)
            return job
        if state is not None and state.state is SupplierState.UNKNOWN:
            logger.warning(
                "job %s: unknown %s status %r", job.job_id, job.supplier, state.raw_status
            )
        if self._past_deadline(job) and (
            self._cancel_task_quietly(job, target) or self._past_deadline(job, times=2)
        ):
            hours = self._settings.suppliers.task_deadline_hours
            self._fail(
                job,
                "SUPPLIER_TIMEOUT",
                f"The supplier did not finish the task within {hours} hours; it was cancelled",
            )
            return job
        seq = (message.poll or 0) + 1
        if self._repo.update(job, {"poll_seq": seq, "claimed_at": clock.now_iso()}):
            self._schedule_poll(job, seq)
        return job

    def _finish_task(self, job: Job, target: Target, state: TaskState) -> None:
        if state.state is SupplierState.CANCELLED:
            if self._repo.update(
                job, {"status": JobStatus.CANCELLED, "completed_at": clock.now_iso()}
            ):
                logger.info("job %s cancelled at %s", job.job_id, job.supplier)
                self._release(job)
            return
        if state.state is SupplierState.FAILED:
            reason = state.reason or f"The supplier reported the task {state.raw_status}"
            self._fail(job, "SUPPLIER_JOB_FAILED", f"{target.name}: {reason}")
            return
        parsed = self._load_circuit(job)
        if parsed is None:
            return
        if state.counts is None:
            self._fail(
                job, "SUPPLIER_JOB_FAILED", f"{target.name} completed the task without counts"
            )
            return
        metadata = _metadata(
            job,
            parsed,
            execution_time_ms=state.execution_time_ms or 0.0,
            method=Mode.CLOUD.value,
            queue_time_ms=state.queue_time_ms,
        )
        self._complete(job, _Outcome(state.counts, Mode.CLOUD.value, metadata), parsed)

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

    def _execute(self, job: Job, parsed: ParsedCircuit) -> None:
        """Run a claimed job and complete it; a refused circuit fails it (and raises)."""
        try:
            outcome = self._simulate(job, parsed)
        except ApiError as exc:
            if _permanent(exc):
                self._fail(job, exc.error_code, exc.detail)
            raise
        self._complete(job, outcome, parsed)

    def _complete(self, job: Job, outcome: _Outcome, parsed: ParsedCircuit) -> None:
        self._record(job, self._completion(job, outcome, parsed))

    def _completion(self, job: Job, outcome: _Outcome, parsed: ParsedCircuit) -> dict[str, Any]:
        """The row's changes that record `outcome` (the result kept, in the row when small)."""
        cost = self._metering.price(job, parsed, outcome.metadata.execution_time_ms)
        elapsed = outcome.metadata.execution_time_ms
        return self._finished(job, outcome.stored(), cost, elapsed, outcome.method)

    def _finished(
        self,
        job: Job,
        result: dict[str, Any],
        cost: Cost,
        execution_time_ms: float,
        method: str,
    ) -> dict[str, Any]:
        now = clock.now_iso()
        return {
            **self._repo.keep_result(job, result),
            "status": JobStatus.COMPLETED,
            "started_at": job.started_at or now,
            "completed_at": now,
            "execution_time_ms": execution_time_ms,
            "method": method,
            "charge": cost_text(cost),
        }

    def _record(self, job: Job, changes: dict[str, Any]) -> None:
        """Mark the job completed (its result and charge in `changes`) if no one else wrote
        it since it was read, then charge it. A crash in between is finished by whoever
        finds the job completed next (a redelivery, or the timer for an owed job)."""
        if not self._repo.update(job, changes):
            logger.warning("job %s changed while running; its first completion stands", job.job_id)
            return
        self._metering.charge(job)

    def _run_task(self, job: Job) -> None:
        """Run a claimed task job with its kind's runner and complete it (free: it runs here).
        A runner's permanent error fails the job (and raises); other errors are retried."""
        runner = self._tasks.get(job.kind)
        if runner is None:  # a row written by a newer version of the app
            self._fail(job, "UNKNOWN_JOB_KIND", f"This deployment cannot run {job.kind} jobs")
            return
        payload = self._repo.circuit_of(job)
        if payload is None:
            self._fail(job, "REQUEST_MISSING", "The job's request was not found")
            return
        try:
            outcome = runner(job, payload)
        except ApiError as exc:
            if _permanent(exc):
                self._fail(job, exc.error_code, exc.detail)
            raise
        self._record(
            job,
            self._finished(job, outcome.result, FREE, outcome.execution_time_ms, outcome.method),
        )

    def _fail(self, job: Job, code: str, detail: str) -> None:
        if not self._repo.update(job, _failure(code, detail)):
            logger.warning("job %s changed before it could be marked failed", job.job_id)
            return
        if job.supplier_job_id is None:  # it never ran at a supplier
            self._release(job)

    # -- quota -----------------------------------------------------------------------------------

    def _release(self, job: Job) -> None:
        """Give back the quota and the budget the job reserved (once; a job that ran keeps
        them). Logged, never raised: the job's own state change has been made."""
        self._release_budget(job)
        if job.quota_day is None:
            return
        try:
            self._quotas.release(job.user_id, job.quota_day, 1, ref=job.job_id)
        except Exception as exc:
            logger.warning("job %s: quota not given back: %s", job.job_id, type(exc).__name__)

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
                    if job.supplier_job_id is None:
                        self._release(job)
                    return
        except Exception as store_exc:  # storage itself is down: the poison queue keeps the id
            logger.error("could not mark job %s failed: %s", message.job_id, store_exc)

    # -- reads and cancel -----------------------------------------------------------------------

    def status(self, principal: Principal, job_id: str) -> JobStatusResponse:
        job = self._get(principal, job_id)
        result = None
        if job.status is JobStatus.COMPLETED:
            stored = self._repo.result_of(job)
            result = JobCounts(counts=stored["counts"]) if stored else None
        return JobStatusResponse(
            job_id=job.job_id,
            status=job.status.value,
            result=result,
            error=JobError.of(job),
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            shots=job.shots,
            backend=job.backend,
            num_qubits=job.num_qubits,
        )

    def results(self, principal: Principal, job_id: str) -> JobResults:
        job = self._get(principal, job_id)
        stored = None
        if job.status is JobStatus.COMPLETED:
            stored = self._repo.result_of(job)
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

    def cancel(self, principal: Principal, job_id: str, kind: str = CIRCUIT) -> JobCancelled:
        """Cancel a queued job, or a cloud supplier's task still running (the supplier is asked
        to cancel it first); a message delivered later finds the job cancelled. Raises
        `Conflict` JOB_NOT_CANCELLABLE for a job running here or finished, and the supplier's
        503 when it cannot be reached."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            job = self._get(principal, job_id, kind)
            if job.status is JobStatus.CANCELLED:
                break
            if self._cloud_task_running(job):
                self._cancel_cloud_task(job)
            elif job.status is not JobStatus.QUEUED:
                raise Conflict(
                    f"Job {job_id} is {job.status.value} and can no longer be cancelled",
                    error_code="JOB_NOT_CANCELLABLE",
                )
            if self._repo.update(
                job, {"status": JobStatus.CANCELLED, "completed_at": clock.now_iso()}
            ):
                logger.info("job %s cancelled", job_id)
                self._release(job)
                break
        else:
            raise RuntimeError(f"could not cancel job {job_id}: too much contention")
        return JobCancelled(job_id=job_id, status=JobStatus.CANCELLED.value)

    @staticmethod
    def _cloud_task_running(job: Job) -> bool:
        return (
            job.status is JobStatus.PROCESSING
            and job.mode == Mode.CLOUD
            and job.supplier is not None
            and job.supplier_job_id is not None
        )

    def _cancel_cloud_task(self, job: Job) -> None:
        """Cancel the job's task at the supplier. A task that finished first is recorded as
        finished (its counts are kept) and answered 409 JOB_NOT_CANCELLABLE."""
        assert job.supplier is not None and job.supplier_job_id is not None
        target = find_supplier(job.supplier).target(job.backend)
        try:
            self._suppliers.cancel(target, job.supplier_job_id)
        except ApiError as exc:
            if not _permanent(exc):
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
            self._finish_task(job, target, state)
            raise Conflict(
                f"Job {job.job_id} finished at {target.name} before it could be cancelled",
                error_code="JOB_NOT_CANCELLABLE",
            )

    def usage(self, user_id: str) -> Usage:
        return Usage(jobs_today=self.jobs_today(user_id), jobs_total=self._repo.count(user_id))

    def jobs_today(self, user_id: str) -> int:
        """The user's jobs created since midnight UTC."""
        return self._repo.count_today(user_id)

    def task(
        self, principal: Principal, job_id: str, kind: str
    ) -> tuple[Job, dict[str, Any] | None]:
        """The caller's job `job_id` of `kind` and its stored result (None until completed);
        raises `NotFound` for another user's job or another kind's."""
        job = self._get(principal, job_id, kind)
        if job.status is not JobStatus.COMPLETED:
            return job, None
        return job, self._repo.result_of(job)

    def _get(self, principal: Principal, job_id: str, kind: str = CIRCUIT) -> Job:
        """The caller's job of `kind` (each API sees only its own kind of job)."""
        job = self._repo.get(principal.user_id, job_id) if is_job_id(job_id) else None
        if job is None or job.kind != kind:
            raise NotFound(f"Job {job_id} not found", error_code="JOB_NOT_FOUND")
        return job

    # -- recovery -------------------------------------------------------------------------------

    def settle(self, network_job_exists: Callable[[str, str], bool]) -> int:
        """Charge completed jobs a dead process left owed, and give back quota held for jobs
        never accepted (holds older than the longest request); `network_job_exists(user_id,
        job_id)` answers for network jobs' holds. Returns how many were found."""
        older_than = clock.iso(clock.utcnow() - timedelta(seconds=HOLD_SECONDS))

        def accepted(user_id: str, ref: str) -> bool:
            job_id, dot, _ = ref.rpartition(".")
            if not dot:  # a network job's hold is its job id
                return network_job_exists(user_id, ref)
            job = self._repo.get(user_id, job_id)
            return job is not None and job.quota_hold == ref

        return self._metering.settle_owed() + self._quotas.sweep(accepted, older_than)

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
