"""Accepting jobs: for the queue (a circuit, a supplier's backend, a task of another kind), in
the request (`execute_sync`), and as the runs of a network job.

A job is accepted once its row exists: today's quota is reserved first (and a cloud job's budget),
the circuit is kept in the row (or in a blob of its own name when large, so a duplicate id never
overwrites another job's circuit), then the row, then the message. A failure before the row gives
the reservations back; if only the message fails, the row says so and the recovery timer sends it.
A run in the request is recorded in one row write, completed with its result and its charge owed.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from shared import clock, telemetry
from shared.accounts.quota import Hold, Quotas
from shared.accounts.service import Principal
from shared.circuits import CircuitLimits, ParsedCircuit, Source, check_source, parse_source
from shared.config import Settings
from shared.errors import ApiError, Conflict, LimitExceeded, ValidationFailed
from shared.jobs.estimates import Estimator
from shared.jobs.inline import InRequest
from shared.jobs.messages import Delivery, JobMessage
from shared.jobs.metering import Metering
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository, blob_stem
from shared.jobs.runs import Outcome, Runs, TaskRunner, describe, failure, permanent
from shared.jobs.schemas import ExecuteRequest, JobAccepted, SupplierExecuteRequest, SyncResult
from shared.jobs.worker import Worker
from shared.ledger.service import Ledger, amount
from shared.suppliers import aer, emulation
from shared.suppliers.backends import supplier_target
from shared.suppliers.base import Mode
from shared.suppliers.catalog import supplier as find_supplier
from shared.suppliers.fit import check_fits
from shared.suppliers.registry import SupplierRegistry

logger = logging.getLogger(__name__)

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


class Submissions:
    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        estimator: Estimator,
        suppliers: SupplierRegistry,
        quotas: Quotas,
        ledger: Ledger,
        metering: Metering,
        runs: Runs,
        worker: Worker,
        tasks: Mapping[str, TaskRunner],
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._estimator = estimator
        self._suppliers = suppliers
        self._quotas = quotas
        self._ledger = ledger
        self._metering = metering
        self._runs = runs
        self._worker = worker
        self._tasks = tasks
        self._in_request = InRequest("execute-sync")

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
        target = supplier_target(info.id, backend)  # any name of it a client uses
        mode = self._suppliers.mode(info.id)
        execute = req.as_execute()
        parsed = self.parse(principal, execute)
        limits = self._settings.limits
        check_fits(target, parsed, execute.shots, mode=mode, limits=limits)
        job = self._new_job(principal, execute, parsed)
        job.supplier, job.backend, job.mode = info.id, target.name, mode.value
        if mode is Mode.EMULATED:  # the same figure as /api/v2/network/estimate's run_s
            job.estimated_run_s = emulation.estimated_seconds(
                target, parsed, execute.shots, limits=limits
            )
        if mode is Mode.CLOUD:  # emulated runs cost nothing
            estimate = self._metering.cost(job, parsed)
            job.estimated_cost = amount(estimate.cost)
            # held atomically against the tenant's and project's budgets until it is charged
            budget = self._ledger.reservations.reserve(
                principal.tenant, job.project, estimate.cost, estimate.currency, ref=job.budget_ref
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
            self._runs.release(job, unwritten=True)  # the budget held for it
            raise
        job.enqueued, job.enqueued_at = True, job.created_at  # one write fewer than flagging later
        try:
            self._repo.keep_circuit(job, qasm)
            self._insert(job)
        except Exception:
            self._repo.drop_circuit_quietly(job)
            self._runs.release(job, hold, unwritten=True)
            raise
        self._quotas.accepted(hold)
        try:
            self._repo.enqueue(JobMessage(job.user_id, job.job_id))
        except Exception as exc:  # accepted: the recovery timer enqueues it
            logger.warning("job %s accepted but not enqueued: %s", job.job_id, type(exc).__name__)
            self._mark_not_enqueued(job)
        return self.answer(job)

    def answer(self, job: Job) -> JobAccepted:
        """What a submit answers for `job`: its status, and how long it should take."""
        waiting = job.status in (JobStatus.QUEUED, JobStatus.PROCESSING)
        return JobAccepted(
            job_id=job.job_id,
            status=job.status.value,
            message=_ANSWERS.get(job.status, f"Job is {job.status.value}"),
            estimated_time_seconds=self._estimator.seconds(job.estimated_run_s) if waiting else 0,
        )

    def _reserve(self, principal: Principal, job: Job) -> Hold | None:
        """Reserve one of today's jobs for `job` (nothing for an unlimited tier)."""
        hold = self._quotas.reserve(principal.user_id, principal.tier, ref=str(job.quota_hold))
        job.quota_day = hold.day if hold is not None else None
        return hold

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
            describe(span, job)
            try:
                answer = self._run_sync(job, parsed, req.qasm)
            except ApiError as exc:
                if job.etag is None:  # no row: the reservation goes back
                    self._runs.release(job, hold, unwritten=True)
                if permanent(exc):  # recorded failed, or refused before it was recorded
                    span.set("job.outcome", job.status.value if job.etag else "rejected")
                raise
            except Exception:
                if job.etag is None:
                    self._runs.release(job, hold, unwritten=True)
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
        job.attempts = 1
        job.enqueued, job.enqueued_at = True, job.created_at  # no message: it runs right here
        job.owed = True  # no message backs it: the timer charges it if this process dies
        # The run and its completion keep the request's log fields and span (a copy each).
        future = self._in_request.submit(self._runs.simulate, job, parsed)
        try:
            outcome = future.result(timeout=self._settings.sync_timeout_seconds)
        except FutureTimeout:
            self._repo.keep_circuit(job, qasm)
            self._insert(job, on_failure=lambda: self._repo.drop_circuit_quietly(job))
            finish = contextvars.copy_context()
            future.add_done_callback(
                lambda done: finish.run(self._finish_in_background, job, parsed, done)
            )
            return self.answer(job)
        except Exception as exc:
            if not permanent(exc):
                raise
            for name, value in failure(exc.error_code, exc.detail).items():
                setattr(job, name, value)
            job.owed = None
            self._insert(job)
            self._runs.release(job)
            raise
        changes = self._runs.completion(job, outcome, parsed)
        for name, value in changes.items():
            setattr(job, name, value)
        self._insert(job, on_failure=lambda: self._repo.drop_result_quietly(job))
        self._metering.charge(job)
        return outcome.response(job)

    def parse(self, principal: Principal, req: ExecuteRequest) -> ParsedCircuit:
        """The circuit, checked against the caller's tier (shots, qubits) and the limits."""
        source = self.check_source(principal, req.qasm, req.shots)
        return parse_source(source, self._circuit_limits(principal))

    def check_source(self, principal: Principal, qasm: str, shots: int) -> Source:
        """The checks of `parse` made before parsing (shots, then the circuit's text): cheap
        enough to run on every circuit of a batch before any is parsed."""
        tier = principal.tier
        if shots > tier.max_shots:
            raise LimitExceeded(
                f"shots {shots} exceeds the {tier.name} tier's limit of {tier.max_shots}",
                error_code="SHOT_LIMIT_EXCEEDED",
            )
        return check_source(qasm, self._circuit_limits(principal))

    def _circuit_limits(self, principal: Principal) -> CircuitLimits:
        return CircuitLimits.from_limits(self._settings.limits, principal.tier.max_qubits)

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
            result_blob=f"{blob_stem(user_id, job_id)}.json",
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
            self._worker.run(
                message.encode(), Delivery(message_id=f"network-{job_id}", dequeue_count=1)
            )
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
        """The row of a job of `parsed` for the local simulator (a supplier's job changes it)."""
        statevector_max_qubits = self._settings.limits.statevector_max_qubits
        run_ns = aer.estimated_ns(parsed, req.shots, statevector_max_qubits=statevector_max_qubits)
        return self._new_row(
            principal,
            req.job_id,
            req.shots,
            req.tags,
            payload="qasm",
            num_qubits=parsed.num_qubits,
            qasm_hash=parsed.qasm_hash,
            estimated_run_s=round(run_ns / 1e9, 6),
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
        stem = blob_stem(principal.user_id, job_id, nonce)
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

    def _finish_in_background(self, job: Job, parsed: ParsedCircuit, done: Future[Outcome]) -> None:
        try:
            self._runs.complete(job, done.result(), parsed)
        except Exception as exc:
            if permanent(exc):
                self._runs.fail(job, exc.error_code, exc.detail)
                return
            logger.exception(
                "job %s: could not record its result; the sweep will rerun it", job.job_id
            )
