"""How a job's run is recorded: the simulation, the completion (its result and charge in one
conditional write, then the ledger entry), a failure, and what a job that never ran gives back.
Every room of the job service finishes jobs through `Runs`, and these helpers name the pieces they
share: a failure's fields, a run's metadata, and the supplier token.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from shared import clock, telemetry
from shared.accounts.quota import Hold, Quotas
from shared.accounts.tiers import TIERS
from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.errors import ApiError, ServiceUnavailable
from shared.jobs.estimates import Estimator
from shared.jobs.metering import Metering, cost_text
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.schemas import ResultMetadata, SyncResult
from shared.ledger.budgets import BudgetHold
from shared.ledger.service import Ledger
from shared.pricing.costs import Cost
from shared.suppliers import aer
from shared.suppliers.backends import public_id

logger = logging.getLogger(__name__)

_DETAIL_MAX = 1000
_TOKEN_NAMESPACE = uuid.UUID("6f1d3c52-8e0b-4b8e-9a55-0c7f6b1e2d41")


def failure(code: str, detail: str) -> dict[str, Any]:
    """The fields that record a job as failed, with a bounded reason."""
    return {
        "status": JobStatus.FAILED,
        "completed_at": clock.now_iso(),
        "error_code": code,
        "error_detail": detail[:_DETAIL_MAX],
    }


def describe(span: telemetry.Span, job: Job) -> None:
    """The job's kind and where it runs, on its run's span."""
    span.set("job.kind", job.kind)
    span.set("job.supplier", job.supplier or "local")
    span.set("job.backend", job.backend)
    span.set("job.mode", job.mode)


def permanent(exc: BaseException) -> TypeGuard[ApiError]:
    """The job's own fault (a refused circuit): retrying cannot help. 503s are transient."""
    return isinstance(exc, ApiError) and not isinstance(exc, ServiceUnavailable)


def client_token(job: Job) -> str:
    """The job's idempotency key at a supplier: stable for the row, distinct for two users (or
    two rows) with the same job id, and safe in every supplier's token field (a UUID)."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{job.user_id}/{job.job_id}/{job.created_at}"))


def run_metadata(
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
        backend=public_id(job.supplier, job.backend),
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
class Outcome:
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


# How often a run's progress is written to its row (one conditional write each).
PROGRESS_EVERY_S = 3.0


class _ProgressWriter:
    """Writes the shots a run reports done to its job's row (`shots_done`), at most every
    `PROGRESS_EVERY_S`, each an ETag-guarded write that keeps `job` current for its completion.
    A write that loses (the job was cancelled meanwhile) is left: the run's watch stops it."""

    def __init__(self, repo: JobRepository, job: Job) -> None:
        self._repo = repo
        self._job = job
        self._written_at = time.monotonic()

    def __call__(self, report: Any) -> None:
        now = time.monotonic()
        if self._job.etag is None or now - self._written_at < PROGRESS_EVERY_S:
            return  # a run in the request has no row yet; or too soon
        self._written_at = now
        done = report.get("shots_done") if isinstance(report, dict) else None
        if not isinstance(done, int):
            return
        try:
            self._repo.update(self._job, {"shots_done": done})
        except Exception as exc:  # progress is never worth failing a run over
            logger.warning("job %s: progress not written: %s", self._job.job_id, exc)


class Runs:
    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        estimator: Estimator,
        quotas: Quotas,
        ledger: Ledger,
        metering: Metering,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._estimator = estimator
        self._quotas = quotas
        self._ledger = ledger
        self._metering = metering
        # Circuits were checked against the owner's tier at submit; the worker re-parses under
        # the largest tier's qubit limit with the same operation and depth bounds.
        self._worker_limits = CircuitLimits.from_limits(
            settings.limits, max(t.max_qubits for t in TIERS.values())
        )

    def simulate(self, job: Job, parsed: ParsedCircuit) -> Outcome:
        """Run the circuit on Aer, held to the run limit and stopped if the job is cancelled
        meanwhile; raises `SimulationError` (permanent) for a refused circuit,
        `RunTimeLimitExceeded` (permanent) past the limit, `RunStopped` once cancelled."""
        run = aer.run(
            parsed,
            job.shots,
            statevector_max_qubits=self._settings.limits.statevector_max_qubits,
            watch=self.watch(job),
        )
        self._estimator.record(run.execution_time_ms)
        metadata = run_metadata(
            job, parsed, execution_time_ms=run.execution_time_ms, method=run.method
        )
        return Outcome(counts=run.counts, method=run.method, metadata=metadata)

    def watch(self, job: Job) -> aer.Watch:
        """What a run of `job` is held to: the run limit, and a look at its row every second
        (only while a run goes on that long) for a cancellation; the shots it reports done are
        written to the row, at most every `PROGRESS_EVERY_S`."""
        return aer.Watch(
            seconds=self._settings.limits.max_run_seconds,
            stopped=lambda: self.cancelled(job),
            progress=_ProgressWriter(self._repo, job),
        )

    def cancelled(self, job: Job) -> bool:
        """True when `job`'s row says it was cancelled (read now)."""
        found = self._repo.get(job.user_id, job.job_id)
        return found is not None and found.status is JobStatus.CANCELLED

    def execute(self, job: Job, parsed: ParsedCircuit) -> None:
        """Run a claimed job and complete it; a refused circuit fails it (and raises). A run
        stopped because the job was cancelled ends here: the cancel gave back what it held."""
        try:
            outcome = self.simulate(job, parsed)
        except aer.RunStopped:
            logger.info("job %s: run stopped, the job was cancelled", job.job_id)
            return
        except ApiError as exc:
            if permanent(exc):
                self.fail(job, exc.error_code, exc.detail)
            raise
        self.complete(job, outcome, parsed)

    def complete(self, job: Job, outcome: Outcome, parsed: ParsedCircuit) -> None:
        self.record(job, self.completion(job, outcome, parsed))

    def completion(self, job: Job, outcome: Outcome, parsed: ParsedCircuit) -> dict[str, Any]:
        """The row's changes that record `outcome` (the result kept, in the row when small)."""
        cost = self._metering.price(job, parsed, outcome.metadata.execution_time_ms)
        elapsed = outcome.metadata.execution_time_ms
        return self.finished(job, outcome.stored(), cost, elapsed, outcome.method)

    def finished(
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

    def record(self, job: Job, changes: dict[str, Any]) -> None:
        """Mark the job completed (its result and charge in `changes`) if no one else wrote
        it since it was read, then charge it. A crash in between is finished by whoever
        finds the job completed next (a redelivery, or the timer for an owed job)."""
        if not self._repo.update(job, changes):
            logger.warning("job %s changed while running; its first completion stands", job.job_id)
            return
        self._metering.charge(job)

    def fail(self, job: Job, code: str, detail: str) -> None:
        if not self._repo.update(job, failure(code, detail)):
            logger.warning("job %s changed before it could be marked failed", job.job_id)
            return
        if job.supplier_job_id is None:  # it never ran at a supplier
            self.release(job)

    def release(self, job: Job, hold: Hold | None = None, *, unwritten: bool = False) -> None:
        """Give back what `job` reserved, once: its budget, and its quota run (a job that ran
        keeps them). For a job whose row was never written (`unwritten`) that is its quota
        `hold`, if any; for one that was, a refund of its day's run marked with its id.
        Logged, never raised: what cannot be given back now, the recovery timer's sweep of
        quota holds gives back, and the job's own state change has been made."""
        self._release_budget(job)
        try:
            if unwritten:
                self._quotas.release_hold(hold)
            elif job.quota_day is not None:
                self._quotas.release(job.user_id, job.quota_day, 1, ref=job.job_id)
        except Exception as exc:
            logger.warning("job %s: quota not given back: %s", job.job_id, type(exc).__name__)

    def _release_budget(self, job: Job) -> None:
        """Give back the budget held for a cloud job that never ran at its supplier (once)."""
        if not job.budget_hold:
            return
        try:
            self._ledger.reservations.release(BudgetHold.decode(job.budget_hold), job.budget_ref)
        except Exception as exc:
            logger.warning("job %s: budget not given back: %s", job.job_id, type(exc).__name__)

    def load_circuit(self, job: Job) -> ParsedCircuit | None:
        """The claimed job's circuit, parsed; None (and the job failed) when it cannot be."""
        circuit = self._repo.circuit_of(job)
        if circuit is None:
            self.fail(job, "CIRCUIT_MISSING", "The job's circuit was not found")
            return None
        try:
            return parse_circuit(circuit, self._worker_limits)
        except ApiError as exc:  # accepted under other limits: settings changed since
            self.fail(job, exc.error_code, exc.detail)
            return None
