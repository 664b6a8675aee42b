"""The network: backends across every supplier, routing, fan-out, batches, estimates.

A network job is planned here (strategy over estimates), recorded (circuit blobs, then its
row), and run by the `network_job` orchestration (`shared.orchestration.network_job`) through
three activities that call back in: `run_slot` (one run, a v1 job of its own, run as the worker
would), `read_runs` (the runs a cloud supplier is still running) and `finish` (the result).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import clock, events
from shared.accounts.quota import Hold, Quotas
from shared.accounts.service import Principal
from shared.circuits import ParsedCircuit, check_qasm3_tokens
from shared.config import Settings
from shared.errors import ApiError, BadRequest, Conflict, NotFound, ServiceUnavailable
from shared.jobs.estimates import Estimator
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository, blob_stem
from shared.jobs.schemas import ExecuteRequest, is_job_id
from shared.jobs.service import JobService
from shared.network import aggregation, strategies
from shared.network.calibration import calibration as read_calibration
from shared.network.estimates import BackendEstimate, Situation, estimate, wait_seconds
from shared.network.repository import (
    RUNNING,
    Group,
    NetworkJob,
    NetworkRepository,
    Slot,
)
from shared.network.schemas import (
    AggregateRequest,
    AggregateResult,
    AggregationMethodInfo,
    AggregationMethods,
    BackendEstimateInfo,
    BackendInfo,
    BackendList,
    BackendStatus,
    CalibrationInfo,
    EstimateRequest,
    EstimateResult,
    GateInfo,
    NetworkBatchRequest,
    NetworkExecuteRequest,
    NetworkStatus,
    PriceInfo,
    QubitInfo,
    QueueInfo,
    Topology,
    TopologyEdge,
    TopologyNode,
)
from shared.orchestration.client import Orchestrations
from shared.orchestration.network_job import ORCHESTRATOR
from shared.pricing.book import cost_model
from shared.storage import LOST, Lost, until_written
from shared.suppliers.backends import Backend, all_backends, find, of_job
from shared.suppliers.base import DeviceKind
from shared.suppliers.registry import SupplierRegistry
from shared.suppliers.schemas import connectivity_of

logger = logging.getLogger(__name__)

_LOAD_TTL_S = 5.0
_METRICS_TTL_S = 10.0
_WAIT_FIRST_S, _WAIT_MOST_S = 0.01, 0.05  # a point read each; the wait adds at most 50 ms
_POLL_FIRST_S, _POLL_MOST_S = 2, 60
_ERROR_STATUS = {"ALL_BACKENDS_FAILED": 503, "AGGREGATION_FAILED": 500}
_SKIPPED = "skipped"  # a named backend left out because it is unavailable (never charged)


class NetworkJobFailed(ApiError):
    """A network job that ended failed, answered with its own code (and what it found)."""

    def __init__(self, job: NetworkJob, extra: dict[str, Any]) -> None:
        code = job.error_code or "ALL_BACKENDS_FAILED"
        super().__init__(
            job.error_detail or "The job failed",
            error_code=code,
            extra={"job_id": job.job_id, **extra},
            status=_ERROR_STATUS.get(code, 502),
        )


@dataclass(frozen=True)
class Accepted:
    """A network job still running when the bounded wait ended."""

    job_id: str
    body: dict[str, Any]


class NetworkService:
    def __init__(
        self,
        settings: Settings,
        repo: NetworkRepository,
        jobs: JobService,
        job_repo: JobRepository,
        suppliers: SupplierRegistry,
        estimator: Estimator,
        quotas: Quotas,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._jobs = jobs
        self._quotas = quotas
        self._job_repo = job_repo
        self._suppliers = suppliers
        self._estimator = estimator
        self._lock = threading.Lock()
        self._load: tuple[float, dict[str, int]] = (-math.inf, {})
        self._metrics: tuple[float, dict[str, Any]] = (-math.inf, {})
        self._last_status: dict[str, str] = {}
        self._sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="network-direct")

    # -- backends -------------------------------------------------------------------------------

    def backends(self) -> BackendList:
        load = self.queue_load()
        return BackendList(backends=[self._info(b, load) for b in all_backends()])

    def backend(self, backend_id: str) -> BackendInfo:
        return self._info(find(backend_id), self.queue_load())

    def calibration(self, backend_id: str) -> CalibrationInfo:
        backend = find(backend_id)
        found = read_calibration(backend.target)
        return CalibrationInfo(
            backend=backend.id,
            source=found.source,
            timestamp=found.timestamp,
            kind=found.kind,
            qubits=[QubitInfo(**vars(q)) for q in found.qubits],
            gates=[GateInfo(**vars(g)) for g in found.gates],
            notes=found.notes,
        )

    def queue(self, backend_id: str) -> QueueInfo:
        backend = find(backend_id)
        depth = self.queue_load().get(backend.id, 0)
        parallelism = self._settings.worker_parallelism
        return QueueInfo(
            backend=backend.id,
            queue_depth=depth,
            estimated_wait_s=wait_seconds(depth, parallelism, self._estimator.mean_seconds()),
            source="this gateway's queued and running jobs on the backend, in waves of "
            f"{parallelism} times the measured mean job time; a supplier's own queue is not read",
        )

    def status(self) -> NetworkStatus:
        """The network's status: `operational` when every backend its supplier still offers
        is online (a retired one is listed `retired` but degrades nothing)."""
        load = self.queue_load()
        listed = []
        capacity = offered = online = 0
        for backend in all_backends():
            state = self._backend_status(backend)
            listed.append(
                BackendStatus(id=backend.id, status=state, queue_depth=load.get(backend.id, 0))
            )
            if state == "online" and backend.kind is not DeviceKind.ANALOG:
                capacity += backend.num_qubits or 0
            if not backend.retired:
                offered += 1
                online += state == "online"
        overall = "operational" if online == offered else "degraded" if online else "down"
        return NetworkStatus(
            overall_status=overall,
            total_capacity=capacity,
            active_jobs=sum(load.values()),
            backends=listed,
        )

    def topology(self) -> Topology:
        nodes: list[TopologyNode] = []
        edges: list[TopologyEdge] = []
        seen: set[str] = set()
        for backend in all_backends():
            supplier_node = f"supplier:{backend.supplier}"
            provider_node = f"provider:{backend.supplier}/{backend.provider}"
            for node_id, kind, name in (
                (supplier_node, "supplier", backend.supplier),
                (provider_node, "provider", backend.provider),
            ):
                if node_id not in seen:
                    seen.add(node_id)
                    nodes.append(TopologyNode(id=node_id, type=kind, name=name, coupling=None))
            if (supplier_node, provider_node) not in {(e.source, e.target) for e in edges}:
                edges.append(TopologyEdge(source=supplier_node, target=provider_node))
            nodes.append(
                TopologyNode(
                    id=backend.id,
                    type="backend",
                    name=backend.name,
                    qubits=backend.num_qubits,
                    coupling=_coupling(backend),
                )
            )
            edges.append(TopologyEdge(source=provider_node, target=backend.id))
        return Topology(nodes=nodes, edges=edges)

    def metrics(self) -> dict[str, Any]:
        """Jobs by status, throughput, p50/p95 queue and execution times per backend, success
        rate and shots, over the last hour and day (cached for a few seconds)."""
        now = time.monotonic()
        with self._lock:
            at, cached = self._metrics
        if now - at < _METRICS_TTL_S:
            return cached
        day_ago = clock.utcnow() - timedelta(days=1)
        rows = list(self._job_repo.created_since(clock.iso(day_ago)))
        hour_ago = clock.iso(clock.utcnow() - timedelta(hours=1))
        result = {
            "generated_at": clock.now_iso(),
            "last_hour": _window([r for r in rows if r.get("created_at", "") >= hour_ago], 3600),
            "last_day": _window(rows, 86400),
        }
        with self._lock:
            self._metrics = (now, result)
        return result

    # -- aggregation and estimates --------------------------------------------------------------

    @staticmethod
    def aggregate(req: AggregateRequest) -> AggregateResult:
        method = _method(req.method_name)
        merged = aggregation.aggregate(
            [aggregation.BackendResult(r.backend, r.counts, r.weight) for r in req.results],
            method,
            shots=req.shots,
        )
        return AggregateResult(
            aggregated_counts=merged.counts,
            aggregation_confidence=merged.confidence,
            weights=merged.weights,
            aggregation_method=method.value,
            method=method.value,
        )

    @staticmethod
    def methods() -> AggregationMethods:
        return AggregationMethods(
            methods=[
                AggregationMethodInfo(
                    name=m.name.value,
                    summary=m.summary,
                    formula=m.formula,
                    when_it_helps=m.when_it_helps,
                )
                for m in aggregation.METHODS
            ],
            note=aggregation.ENSEMBLE_NOTE,
        )

    def estimate(self, principal: Principal, req: EstimateRequest) -> EstimateResult:
        parsed = self._parse(principal, req.qasm, req.shots)
        found = estimate(self._candidates(req.backends), parsed, req.shots, self._situation())
        choices = strategies.every_choice(found)
        return EstimateResult(
            shots=req.shots,
            backends=[_estimate_info(e) for e in found],
            strategies={
                name: (ids if name in ("all", "ordered") else (ids[0] if ids else None))
                for name, ids in choices.items()
            },
        )

    # -- execution ------------------------------------------------------------------------------

    def execute(
        self, principal: Principal, req: NetworkExecuteRequest, orchestrations: Orchestrations
    ) -> dict[str, Any] | Accepted:
        """Plan, record and start a network job, then wait a bounded time for it.

        Raises 400 INVALID_STRATEGY, 404 BACKEND_NOT_FOUND, 503 NO_BACKENDS, 400
        CIRCUIT_DOES_NOT_FIT (fits no online backend), 400 TOO_MANY_BACKENDS, 403
        QUOTA_EXCEEDED, and the job's own failure (503 ALL_BACKENDS_FAILED, 500
        AGGREGATION_FAILED) when it fails within the wait."""
        strategy = strategies.parse(req.strategy)
        method = _method(req.aggregation_method)
        parsed = self._parse(principal, req.qasm, req.shots)
        group, slots = self._route(principal, strategy, req.backends, parsed, req.shots)
        kind = {strategies.Strategy.ALL: "all", strategies.Strategy.ORDERED: "single"}
        job = self._new_job(principal, strategy, kind.get(strategy, "direct"), len(slots))
        job.aggregate, job.method, job.min_confidence = (
            req.aggregate,
            method.value,
            req.min_confidence,
        )
        job.groups, job.slots = [group], slots
        if job.kind == "direct":
            return self._run_direct(job, req.qasm)
        self._start(job, [req.qasm], orchestrations)
        return self._wait(principal, job.job_id)

    def execute_batch(
        self, principal: Principal, req: NetworkBatchRequest, orchestrations: Orchestrations
    ) -> dict[str, Any] | Accepted:
        """A batch: each circuit routed by the strategy, every run in one orchestration."""
        strategy = strategies.parse(req.strategy)
        method = _method(req.aggregation_method)
        limit = self._settings.network_max_runs
        self._check_batch(principal, req, limit)
        groups: list[Group] = []
        slots: list[Slot] = []
        sources = []
        for index, circuit in enumerate(req.circuits):
            shots = circuit.shots or req.shots
            try:
                parsed = self._parse(principal, circuit.qasm, shots)
                group, routed = self._route(principal, strategy, req.backends, parsed, shots)
            except ApiError as exc:
                exc.detail = f"circuits[{index}]: {exc.detail}"
                raise
            group.name = circuit.name or f"circuit-{index}"
            for slot in routed:
                slot.group = index
            groups.append(group)
            slots.extend(routed)
            sources.append(circuit.qasm)
        if len(slots) > limit:
            raise BadRequest(
                f"This batch makes {len(slots)} runs; at most {limit} may run in one batch",
                error_code="TOO_MANY_RUNS",
            )
        job = self._new_job(principal, strategy, "batch", len(slots))
        job.aggregate, job.method, job.min_confidence = (
            req.aggregate,
            method.value,
            req.min_confidence,
        )
        job.groups, job.slots = groups, slots
        self._start(job, sources, orchestrations)
        return self._wait(principal, job.job_id)

    def _check_batch(self, principal: Principal, req: NetworkBatchRequest, limit: int) -> None:
        """The batch's cheap limits, before any circuit is parsed: each circuit makes a run at
        least, each circuit's shots and text pass the checks made before parsing, and the
        OpenQASM 3 the batch would parse is bounded as one program's is."""
        if len(req.circuits) > limit:
            raise BadRequest(
                f"This batch makes at least {len(req.circuits)} runs; at most {limit} may run in"
                " one batch",
                error_code="TOO_MANY_RUNS",
            )
        tokens = 0
        for index, circuit in enumerate(req.circuits):
            try:
                source = self._jobs.check_source(
                    principal, circuit.qasm, circuit.shots or req.shots
                )
            except ApiError as exc:
                exc.detail = f"circuits[{index}]: {exc.detail}"
                raise
            tokens += source.tokens
        check_qasm3_tokens(tokens, "The batch's circuits have")

    def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        """The job's status and, once it ended, its results (per circuit for a batch)."""
        job = self._get(principal, job_id)
        return self._view(job)

    def cancel(
        self, principal: Principal, job_id: str, orchestrations: Orchestrations
    ) -> dict[str, Any]:
        """Cancel a network job: its row first (so no new run starts), the orchestration,
        then every run not yet finished (a cloud task is cancelled at its supplier). Runs that
        finished keep their results. 409 JOB_NOT_CANCELLABLE once the job has ended."""

        def attempt(n: int) -> NetworkJob | Lost:
            job = self._get(principal, job_id)
            if job.status is JobStatus.CANCELLED:
                return job
            if job.status.terminal:
                raise Conflict(
                    f"Job {job_id} is {job.status.value} and can no longer be cancelled",
                    error_code="JOB_NOT_CANCELLABLE",
                )
            if not self._repo.update(
                job, {"status": JobStatus.CANCELLED, "completed_at": clock.now_iso()}
            ):
                return LOST
            return job

        job = until_written(
            attempt,
            busy=lambda: RuntimeError(f"could not cancel job {job_id}: too much contention"),
        )
        if job.kind != "direct":
            orchestrations.terminate(job_id, "cancelled by its owner")
        runs = list(self._job_repo.runs_of(job.user_id, job.job_id))
        self._settle_quota(job, runs)
        for child in runs:
            if child.status.terminal:
                continue
            try:
                self._jobs.cancel(principal, child.job_id)
            except Conflict:
                logger.info(
                    "run %s of %s could not be cancelled; it finishes", child.job_id, job_id
                )
        return {"job_id": job_id, "status": JobStatus.CANCELLED.value}

    # -- the orchestration's activities ---------------------------------------------------------

    def run_slot(self, user_id: str, job_id: str, slot: int, attempt: int) -> dict[str, Any]:
        """Run attempt `attempt` of slot `slot` (activity `network_run`; safe to repeat)."""
        job = self._repo.get(user_id, job_id)
        if job is None:
            return _outcome(slot, attempt, "", None, "failed", "JOB_NOT_FOUND", "no such job")
        return self._run(job, slot, attempt)

    def _run(self, job: NetworkJob, slot: int, attempt: int) -> dict[str, Any]:
        plan = job.slots[slot]
        backend = find(plan.backends[attempt])
        run_id = job.child_id(slot, attempt)
        if job.status.terminal:
            return _outcome(slot, attempt, backend.id, run_id, "cancelled")
        group = job.groups[plan.group]
        self._jobs.create_child(
            job.user_id,
            run_id,
            supplier=None if backend.local else backend.supplier,
            backend=backend.name,
            circuit_blob=group.circuit_blob,
            shots=group.shots,
            num_qubits=group.num_qubits,
            qasm_hash=group.qasm_hash,
            tenant=job.tenant,
        )
        return _run_outcome(slot, attempt, backend.id, self._jobs.run_child(job.user_id, run_id))

    def read_runs(self, user_id: str, runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The outcomes of runs still running (activity `network_poll`)."""
        found = []
        for run in runs:
            child = self._job_repo.get(user_id, str(run["run_id"]))
            slot, attempt, backend = int(run["slot"]), int(run["attempt"]), str(run["backend"])
            if child is None:
                found.append(_outcome(slot, attempt, backend, None, "failed", "JOB_NOT_FOUND", ""))
            else:
                found.append(_run_outcome(slot, attempt, backend, child))
        return found

    def finish(self, user_id: str, job_id: str) -> dict[str, Any]:
        """Merge the runs into the job's result and end the job (activity `network_finish`).
        The runs' rows are the record; the orchestrator's outcomes only say they all ended."""
        job = self._repo.get(user_id, job_id)
        if job is None:
            return {"status": "missing"}
        if job.status.terminal:
            return {"status": job.status.value}
        runs = {run.job_id: run for run in self._job_repo.runs_of(user_id, job_id)}
        groups = [self._group_result(job, g, runs) for g in range(len(job.groups))]
        self._job_repo.put_result(job.result_blob, {"groups": groups})
        self._end(job, groups, runs.values())
        return {"status": job.status.value}

    # -- planning -------------------------------------------------------------------------------

    def _parse(self, principal: Principal, qasm: str, shots: int) -> ParsedCircuit:
        return self._jobs.parse(principal, ExecuteRequest(qasm=qasm, shots=shots, job_id=None))

    def _candidates(self, named: Sequence[str] | None) -> list[Backend]:
        """The backends named (in that order, each once), or every backend that runs circuits
        (syntax checkers, which return zeros, and analog devices only when named)."""
        if named:
            chosen: dict[str, Backend] = {}
            for name in named:
                backend = find(name)
                chosen.setdefault(backend.id, backend)
            return list(chosen.values())
        excluded = (DeviceKind.SYNTAX_CHECKER, DeviceKind.ANALOG)
        return [b for b in all_backends() if b.kind not in excluded and not b.retired]

    def _route(
        self,
        principal: Principal,
        strategy: strategies.Strategy,
        named: Sequence[str] | None,
        parsed: ParsedCircuit,
        shots: int,
    ) -> tuple[Group, list[Slot]]:
        found = estimate(self._candidates(named), parsed, shots, self._situation())
        turn = (
            self._repo.next_turn(principal.user_id)
            if strategy is strategies.Strategy.ROUND_ROBIN
            else 0
        )
        chosen = strategies.choose(strategy, found, turn=turn)
        fan_out = self._settings.network_max_fanout
        if strategy is strategies.Strategy.ALL and len(chosen) > fan_out:
            raise BadRequest(
                f"strategy all would run on {len(chosen)} backends; at most {fan_out} may run "
                "at once: name them in `backends`",
                error_code="TOO_MANY_BACKENDS",
            )
        group = Group(
            circuit_blob="",
            shots=shots,
            num_qubits=parsed.num_qubits,
            qasm_hash=parsed.qasm_hash,
            fidelity={e.backend.id: e.fidelity or 0.0 for e in chosen},
        )
        if named and strategy in (strategies.Strategy.ALL, strategies.Strategy.ORDERED):
            group.skipped = [_skipped(e) for e in found if not e.usable]
        if strategy is strategies.Strategy.ALL:
            return group, [Slot(0, [e.backend.id]) for e in chosen]
        if strategy is strategies.Strategy.ORDERED:
            return group, [Slot(0, [e.backend.id for e in chosen])]
        return group, [Slot(0, [chosen[0].backend.id])]

    def _new_job(
        self, principal: Principal, strategy: strategies.Strategy, kind: str, runs: int
    ) -> NetworkJob:
        """A new job of `runs` runs, reserved from today's quota (every run is a job): 403
        QUOTA_EXCEEDED when fewer remain. The reservation is settled when the job ends."""
        job_id = str(uuid.uuid4())  # the form of a v1 job's id
        hold = self._quotas.reserve(principal.user_id, principal.tier, ref=job_id, runs=runs)
        return NetworkJob(
            user_id=principal.user_id,
            job_id=job_id,
            status=JobStatus.QUEUED,
            kind=kind,
            strategy=strategy.value,
            created_at=clock.now_iso(),
            groups=[],
            slots=[],
            result_blob=f"{blob_stem(principal.user_id, job_id)}.network.json",
            tenant=principal.tenant or None,
            quota_day=hold.day if hold is not None else None,
            quota_runs=runs,
        )

    def _record(self, job: NetworkJob, sources: Sequence[str]) -> None:
        """The circuit blobs, then the row: the job is accepted once its row exists (before
        that, a failure gives its quota back)."""
        try:
            for index, (group, source) in enumerate(zip(job.groups, sources, strict=True)):
                group.circuit_blob = f"{blob_stem(job.user_id, f'{job.job_id}-{index}')}.qasm"
                self._job_repo.put_circuit(group.circuit_blob, source)
            if not self._repo.insert(job):
                raise Conflict(f"Job {job.job_id} exists", error_code="DUPLICATE_JOB_ID")
        except Exception:
            self._give_back(job)
            raise
        self._quotas.accepted(self._hold(job))

    @staticmethod
    def _hold(job: NetworkJob) -> Hold | None:
        """The reservation `job` made (its hold is named by the job id)."""
        return Hold(job.user_id, job.quota_day, job.job_id) if job.quota_day else None

    def _give_back(self, job: NetworkJob) -> None:
        """Give back every run reserved for a job that was never accepted (or was removed
        before it started). Logged, never raised: the quota's sweep gives back a hold left."""
        try:
            if not self._quotas.release_hold(self._hold(job)):
                self._settle_quota(job, (), ref=f"{job.job_id}.unstarted")  # hold dropped
        except Exception as exc:
            logger.warning("job %s: quota not given back now: %s", job.job_id, type(exc).__name__)

    def _settle_quota(self, job: NetworkJob, runs: Iterable[Job], ref: str = "") -> None:
        """Give back the runs reserved for `job` that never ran (once), `runs` being its runs'
        rows as they stand. Logged, never raised."""
        if job.quota_day is None or not job.quota_runs:
            return
        try:
            ran = sum(
                1
                for child in runs
                if child.status is JobStatus.COMPLETED
                or child.supplier_job_id is not None
                or child.status is JobStatus.PROCESSING
            )
            unused = job.quota_runs - ran
            self._quotas.release(job.user_id, job.quota_day, unused, ref=ref or job.job_id)
        except Exception as exc:
            logger.warning("job %s: quota not settled: %s", job.job_id, type(exc).__name__)

    def _run_direct(self, job: NetworkJob, source: str) -> dict[str, Any] | Accepted:
        """A job on one backend with nothing to fall over to: its one run runs in this request
        (as `POST /execute-sync` does), bounded by the sync timeout; a cloud run is submitted
        and polled by the queue. Past the bound the job to poll is returned and the run goes
        on; the job settles when it is next read (`_view`)."""
        self._record(job, [source])
        run = self._sync_pool.submit(self._run, job, 0, 0)
        try:
            run.result(timeout=self._settings.sync_timeout_seconds)
        except FutureTimeout:
            return Accepted(job.job_id, self._view(job))
        view = self._view(job)
        if view["status"] == JobStatus.FAILED.value:
            raise NetworkJobFailed(job, {"failed": view.get("failed", [])})
        return view

    def _start(
        self, job: NetworkJob, sources: Sequence[str], orchestrations: Orchestrations
    ) -> None:
        """Circuit blobs, the row, then the orchestration; undone when the start fails."""
        self._record(job, sources)
        payload = {
            "user_id": job.user_id,
            "job_id": job.job_id,
            "slots": [len(s.backends) for s in job.slots],
            "poll": [_POLL_FIRST_S, _POLL_MOST_S],
            "max_polls": self._settings.suppliers.task_deadline_hours * 3600 // _POLL_MOST_S + 20,
        }
        try:
            orchestrations.start(ORCHESTRATOR, job.job_id, payload)
        except Exception as exc:
            logger.error("network job %s could not start: %s", job.job_id, exc)
            self._repo.delete_quietly(job)
            self._give_back(job)
            for group in job.groups:
                self._job_repo.delete_circuit_quietly(group.circuit_blob)
            raise ServiceUnavailable("The orchestration could not be started; retry") from exc

    def _wait(self, principal: Principal, job_id: str) -> dict[str, Any] | Accepted:
        deadline = time.monotonic() + self._settings.sync_timeout_seconds
        pause = _WAIT_FIRST_S
        while True:
            job = self._get(principal, job_id)
            if job.status.terminal:
                view = self._view(job)
                if job.status is JobStatus.FAILED:
                    raise NetworkJobFailed(
                        job, {k: v for k, v in view.items() if k in ("failed", "distributions")}
                    )
                return view
            if time.monotonic() + pause > deadline:
                return Accepted(job_id, self._view(job))
            time.sleep(pause)
            pause = min(pause * 1.5, _WAIT_MOST_S)

    # -- reading --------------------------------------------------------------------------------

    def exists(self, user_id: str, job_id: str) -> bool:
        """True when `user_id` has network job `job_id`."""
        return self._repo.get(user_id, job_id) is not None

    def _get(self, principal: Principal, job_id: str) -> NetworkJob:
        found = None
        if is_job_id(job_id):
            found = self._repo.get(principal.user_id, job_id)
        if found is None:
            raise NotFound(f"Job {job_id[:100]} not found", error_code="JOB_NOT_FOUND")
        return found

    def _view(self, job: NetworkJob) -> dict[str, Any]:
        base: dict[str, Any] = {
            "job_id": job.job_id,
            "status": job.status.value,
            "strategy": job.strategy,
            "created_at": job.created_at,
            "completed_at": job.completed_at,
        }
        if job.status is JobStatus.FAILED:
            base["error"] = {"error_code": job.error_code or "", "detail": job.error_detail or ""}
        if job.kind == "direct":
            return self._direct_view(job, base)
        stored = self._job_repo.get_result(job.result_blob) if job.status.terminal else None
        if stored is None:
            runs = list(self._job_repo.runs_of(job.user_id, job.job_id))
            if runs and job.status is JobStatus.QUEUED:
                base["status"] = RUNNING
            base["progress"] = {
                "runs_started": len(runs),
                "runs_finished": job.runs_finished(runs),
                "runs_planned": len(job.slots),
            }
            return base
        groups = stored["groups"]
        if job.kind == "batch":
            return base | {"circuits": groups}
        return base | _public_group(groups[0], single=job.kind == "single")

    def _direct_view(self, job: NetworkJob, base: dict[str, Any]) -> dict[str, Any]:
        """A direct job's view, from its one run; the row is settled once the run ended."""
        run = self._job_repo.get(job.user_id, job.child_id(0, 0))
        if run is None or not run.status.terminal:
            if run is not None and not job.status.terminal:
                base["status"] = RUNNING
            return base | {"backend": job.slots[0].backends[0]}
        group = self._group_result(job, 0, {run.job_id: run})
        if not job.status.terminal:
            self._end(job, [group], [run])
            base |= {"status": job.status.value, "completed_at": job.completed_at}
            if job.status is JobStatus.FAILED:
                base["error"] = {
                    "error_code": job.error_code or "",
                    "detail": job.error_detail or "",
                }
        return base | _public_group(group, single=True)

    def _end(
        self, job: NetworkJob, groups: Sequence[Mapping[str, Any]], runs: Iterable[Job]
    ) -> None:
        """Record the job's end from its circuits' results (`job` then holds it): completed
        when any circuit completed, else failed with AGGREGATION_FAILED when that is every
        circuit's reason, ALL_BACKENDS_FAILED otherwise. `runs`: its runs' rows."""
        changes: dict[str, Any] = {"completed_at": clock.now_iso()}
        if any(g["status"] == "completed" for g in groups):
            changes["status"] = JobStatus.COMPLETED
        else:
            codes = {g.get("error_code") for g in groups}
            changes |= {
                "status": JobStatus.FAILED,
                "error_code": "AGGREGATION_FAILED"
                if codes == {"AGGREGATION_FAILED"}
                else "ALL_BACKENDS_FAILED",
                "error_detail": groups[0].get("error_detail") or "Every backend failed",
            }
        if self._repo.update(job, changes):
            self._settle_quota(job, runs)
            return
        fresh = self._repo.get(job.user_id, job.job_id)  # another writer ended it first
        if fresh is not None:
            job.status, job.completed_at = fresh.status, fresh.completed_at
            job.error_code, job.error_detail = fresh.error_code, fresh.error_detail

    def _group_result(self, job: NetworkJob, index: int, runs: Mapping[str, Job]) -> dict[str, Any]:
        """Circuit `index`'s result from its runs' rows (`runs`: every run, by id)."""
        group = job.groups[index]
        results: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for slot_index, slot in enumerate(job.slots):
            if slot.group != index:
                continue
            for attempt in range(len(slot.backends)):
                run_id = job.child_id(slot_index, attempt)
                child = runs.get(run_id)
                backend_id = slot.backends[attempt]
                if child is None:
                    continue
                if child.status is JobStatus.COMPLETED:
                    stored = self._job_repo.result_of(child)
                    if stored is not None:
                        results.append(_run_result(backend_id, child, stored, group))
                        continue
                failed.append(_failure(backend_id, child))
        failed += group.skipped
        fan_out = job.kind == "all" or (job.kind == "batch" and job.strategy == "all")
        # a fan-out reports each backend it was asked for: ran, or skipped as unavailable
        shown = results + [
            s | {"counts": None} for s in group.skipped if s.get("status") == _SKIPPED and fan_out
        ]
        entry: dict[str, Any] = {
            "index": index,
            "name": group.name,
            "results": shown,
            "failed": failed,
        }
        if not results:
            return entry | {
                "status": "failed",
                "error_code": "ALL_BACKENDS_FAILED",
                "error_detail": "; ".join(f"{f['backend']}: {f['detail']}" for f in failed)[:1000]
                or "No backend ran the circuit",
            }
        entry["status"] = "completed"
        if not fan_out:
            return entry
        if not job.aggregate:
            return entry
        merged = aggregation.aggregate(
            [
                aggregation.BackendResult(
                    r["backend"], r["counts"], group.fidelity.get(r["backend"]) or None
                )
                for r in results
            ],
            aggregation.Method(job.method),
            shots=group.shots,
        )
        entry |= {
            "aggregated_counts": merged.counts,
            "aggregation_confidence": merged.confidence,
            "weights": merged.weights,
            "aggregation_method": job.method,
        }
        if job.min_confidence is not None and merged.confidence < job.min_confidence:
            entry |= {
                "status": "failed",
                "error_code": "AGGREGATION_FAILED",
                "error_detail": f"The backends agree to {merged.confidence:.3f}; the job asked "
                f"for at least {job.min_confidence:.3f}",
                "distributions": merged.distributions,
            }
        return entry

    # -- the network's state --------------------------------------------------------------------

    def _situation(self) -> Situation:
        return Situation(
            modes={s: self._suppliers.mode(s) for s in self._suppliers.ids()},
            online={b.id: self._backend_status(b) == "online" for b in all_backends()},
            queue_depth=self.queue_load(),
            mean_job_s=self._estimator.mean_seconds(),
            parallelism=self._settings.worker_parallelism,
            limits=self._settings.limits,
        )

    def backend_status(self, backend_id: str) -> str:
        """The status of backend `backend_id` (see `_backend_status`)."""
        return self._backend_status(find(backend_id))

    def _backend_status(self, backend: Backend) -> str:
        """online, retired (its supplier no longer offers it) or offline (a supplier whose
        credentials fail); a change is published as an event, with the queue depth last
        counted."""
        status = "online"
        if backend.target is not None:
            if backend.retired:
                status = "retired"
            elif self._suppliers.status(backend.supplier).status != "active":
                status = "offline"
        with self._lock:
            before = self._last_status.get(backend.id)
            self._last_status[backend.id] = status
        if before is not None and before != status:
            depth = self._load[1].get(backend.id, 0)
            events.publish(events.Event("backend", backend.id, status, queue_depth=depth))
        return status

    def queue_load(self, max_age_s: float = _LOAD_TTL_S) -> dict[str, int]:
        """This gateway's open jobs per backend id, counted at most `max_age_s` ago (one
        query of every open job when counted now)."""
        now = time.monotonic()
        with self._lock:
            at, cached = self._load
        if now - at < max_age_s:
            return cached
        counts: Counter[str] = Counter()
        for row in self._job_repo.open_jobs():
            try:
                backend = of_job(row.get("supplier"), str(row.get("backend") or ""))
            except NotFound:
                continue
            counts[backend.id] += 1
        load = dict(counts)
        with self._lock:
            self._load = (now, load)
        return load

    def _info(self, backend: Backend, load: Mapping[str, int]) -> BackendInfo:
        target = backend.target
        mode = "local" if target is None else self._suppliers.mode(backend.supplier).value
        cost = cost_model(target) if target else None
        return BackendInfo(
            id=backend.id,
            supplier=backend.supplier,
            provider=backend.provider,
            target=backend.name,
            kind=backend.kind.value,
            qubits=backend.num_qubits,
            native_gates=list(target.native_gates) if target else [],
            status=self._backend_status(backend),
            status_detail=target.description if backend.retired and target else None,
            successor=backend.successor,
            queue_depth=load.get(backend.id, 0),
            mode=mode,
            price=cost.to_dict() if cost else None,
        )


# -- helpers ----------------------------------------------------------------------------------


def _skipped(e: BackendEstimate) -> dict[str, str]:
    """A named backend the plan left out: unavailable (status `skipped`: retired or offline),
    or the circuit does not fit it."""
    backend = e.backend
    if backend.retired and backend.target is not None:
        detail = backend.target.description
        if backend.successor:
            detail = f"{detail} Its successor: {backend.successor}."
        return {
            "backend": backend.id,
            "status": _SKIPPED,
            "error_code": "BACKEND_RETIRED",
            "detail": detail,
        }
    if not e.online:
        return {
            "backend": backend.id,
            "status": _SKIPPED,
            "error_code": "BACKEND_OFFLINE",
            "detail": f"{backend.supplier} is not reachable now; the backend was not run",
        }
    code, _, detail = (e.reasons[0] if e.reasons else "CIRCUIT_DOES_NOT_FIT: ").partition(": ")
    return {"backend": backend.id, "error_code": code, "detail": detail}


def _method(name: str) -> aggregation.Method:
    try:
        return aggregation.Method(name.strip().lower())
    except ValueError:
        names = ", ".join(m.value for m in aggregation.Method)
        raise BadRequest(
            f"Unknown aggregation method {name[:40]!r}; methods: {names}",
            error_code="INVALID_AGGREGATION_METHOD",
        ) from None


def _outcome(
    slot: int,
    attempt: int,
    backend: str,
    run_id: str | None,
    status: str,
    error_code: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "slot": slot,
        "attempt": attempt,
        "backend": backend,
        "run_id": run_id,
        "status": status,
    }
    if error_code:
        outcome |= {"error_code": error_code, "detail": detail or ""}
    return outcome


def _run_outcome(slot: int, attempt: int, backend: str, child: Job) -> dict[str, Any]:
    if child.status is JobStatus.COMPLETED:
        return _outcome(slot, attempt, backend, child.job_id, "completed")
    if child.status is JobStatus.FAILED:
        return _outcome(
            slot,
            attempt,
            backend,
            child.job_id,
            "failed",
            child.error_code or "FAILED",
            child.error_detail,
        )
    if child.status is JobStatus.CANCELLED:
        return _outcome(slot, attempt, backend, child.job_id, "cancelled")
    return _outcome(slot, attempt, backend, child.job_id, "running")


def _run_result(
    backend_id: str, child: Job, stored: Mapping[str, Any], group: Group
) -> dict[str, Any]:
    metadata = stored.get("metadata", {})
    queue_ms = metadata.get("queue_time_ms")
    return {
        "backend": backend_id,
        "job_id": child.job_id,
        "status": "completed",
        "counts": stored["counts"],
        "mode": metadata.get("mode") or ("local" if child.supplier is None else None),
        "fidelity": group.fidelity.get(backend_id),
        "queue_time_s": None if queue_ms is None else round(queue_ms / 1000, 6),
        "execution_time_s": round(float(metadata.get("execution_time_ms", 0.0)) / 1000, 6),
    }


def _failure(backend_id: str, child: Job) -> dict[str, Any]:
    if child.status is JobStatus.FAILED:
        return {
            "backend": backend_id,
            "error_code": child.error_code or "FAILED",
            "detail": child.error_detail or "",
        }
    if child.status is JobStatus.CANCELLED:
        return {"backend": backend_id, "error_code": "CANCELLED", "detail": "The run was cancelled"}
    return {
        "backend": backend_id,
        "error_code": "SUPPLIER_TIMEOUT",
        "detail": "The run had not finished when the job ended",
    }


def _public_group(group: Mapping[str, Any], *, single: bool) -> dict[str, Any]:
    """A group's result in the shape of its strategy (issue's `POST /execute` answers)."""
    if single:
        results = group.get("results") or [{}]
        best = results[0]
        return {
            "backend": best.get("backend"),
            "counts": best.get("counts"),
            "mode": best.get("mode"),
            "run_job_id": best.get("job_id"),
            "queue_time_s": best.get("queue_time_s"),
            "execution_time_s": best.get("execution_time_s"),
            "failed": group.get("failed", []),
        }
    shown = {
        k: group.get(k)
        for k in ("results", "aggregated_counts", "aggregation_confidence", "weights", "failed")
    }
    shown["aggregation_method"] = group.get("aggregation_method")
    if "distributions" in group:
        shown["distributions"] = group["distributions"]
    return shown


def _coupling(backend: Backend) -> list[list[int]] | str | None:
    target = backend.target
    if target is None or target.kind is DeviceKind.SIMULATOR:
        return None
    if target.coupling is not None:
        return [list(pair) for pair in target.coupling]
    if target.calibration.startswith("fake_"):
        from shared.suppliers.emulation import target_device

        qiskit_target = target_device(target).target
        return [list(pair) for pair in qiskit_target.build_coupling_map().get_edges()]
    return connectivity_of(target)


def _estimate_info(e: BackendEstimate) -> BackendEstimateInfo:
    return BackendEstimateInfo(
        backend=e.backend.id,
        fits=e.fits,
        reasons=list(e.reasons),
        status="retired" if e.backend.retired else "online" if e.online else "offline",
        mode=e.mode,
        cost=PriceInfo(**e.cost.to_dict()) if e.cost else None,
        device_cost=PriceInfo(**e.device_cost.to_dict()) if e.device_cost else None,
        estimated_wait_s=e.wait_s,
        estimated_run_s=e.run_s,
        device_run_s=e.device_run_s,
        fidelity=e.fidelity,
    )


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)


def _window(rows: Sequence[Mapping[str, Any]], seconds: int) -> dict[str, Any]:
    by_status = Counter(str(r.get("status")) for r in rows)
    finished = by_status["completed"] + by_status["failed"]
    per_backend: dict[str, dict[str, list[float]]] = {}
    shots = 0
    for row in rows:
        try:
            backend = of_job(row.get("supplier"), str(row.get("backend") or "")).id
        except NotFound:
            continue
        times = per_backend.setdefault(backend, {"queue": [], "execution": []})
        if row.get("started_at") and row.get("created_at"):
            waited = clock.parse_iso(row["started_at"]) - clock.parse_iso(row["created_at"])
            times["queue"].append(max(waited.total_seconds() * 1000, 0.0))
        if row.get("status") == "completed":
            shots += int(row.get("shots") or 0)
            if row.get("execution_time_ms") is not None:
                times["execution"].append(float(row["execution_time_ms"]))
    return {
        "jobs_by_status": dict(by_status),
        "jobs": len(rows),
        "throughput_per_minute": round(finished / (seconds / 60), 3),
        "success_rate": round(by_status["completed"] / finished, 4) if finished else None,
        "shots_executed": shots,
        "backends": {
            backend: {
                "jobs": len(times["queue"]),
                "queue_time_ms": {
                    "p50": _percentile(times["queue"], 0.5),
                    "p95": _percentile(times["queue"], 0.95),
                },
                "execution_time_ms": {
                    "p50": _percentile(times["execution"], 0.5),
                    "p95": _percentile(times["execution"], 0.95),
                },
            }
            for backend, times in sorted(per_backend.items())
        },
    }
