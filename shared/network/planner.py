"""Planning a network job: which backends each circuit runs on, as runs of the job's slots.

For each circuit the candidates (the backends named, or every one that runs circuits) are
estimated (`estimates.estimate`: fit, fidelity, wait, run time, cost) and the strategy chooses
(`strategies.choose`). `all` makes a slot per chosen backend, `ordered` one slot falling over
along them, the others one slot on the one chosen. Named backends left out are kept with the
reason, to show in the result. The day's quota is reserved for every run at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared import clock
from shared.accounts.quota import Quotas
from shared.accounts.service import Principal
from shared.circuits import ParsedCircuit, check_qasm3_tokens
from shared.config import Settings
from shared.errors import ApiError, BadRequest
from shared.jobs.models import JobStatus
from shared.jobs.repository import blob_stem
from shared.jobs.schemas import ExecuteRequest
from shared.jobs.service import JobService
from shared.network import aggregation, strategies
from shared.network.estimates import BackendEstimate, estimate
from shared.network.repository import Group, JobKind, NetworkJob, NetworkRepository, Slot
from shared.network.results import SKIPPED
from shared.network.schemas import (
    BackendEstimateInfo,
    EstimateRequest,
    EstimateResult,
    NetworkBatchRequest,
    NetworkExecuteRequest,
    PriceInfo,
)
from shared.network.state import NetworkState
from shared.suppliers.backends import Backend, all_backends, find
from shared.suppliers.base import DeviceKind

# The strategies that run on several backends (each one is listed in an estimate's answer)
_MANY = (strategies.Strategy.ALL.value, strategies.Strategy.ORDERED.value)
# The job kind of each strategy for one circuit; any other runs on one backend, in the request.
_KINDS = {strategies.Strategy.ALL: JobKind.ALL, strategies.Strategy.ORDERED: JobKind.SINGLE}


class Planner:
    def __init__(
        self,
        settings: Settings,
        repo: NetworkRepository,
        jobs: JobService,
        state: NetworkState,
        quotas: Quotas,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._jobs = jobs
        self._state = state
        self._quotas = quotas

    def plan(self, principal: Principal, req: NetworkExecuteRequest) -> NetworkJob:
        """One circuit's job, planned, its runs reserved from today's quota.

        Raises 400 INVALID_STRATEGY, 404 BACKEND_NOT_FOUND, 503 NO_BACKENDS, 400
        CIRCUIT_DOES_NOT_FIT (fits no online backend), 400 TOO_MANY_BACKENDS, 403
        QUOTA_EXCEEDED."""
        strategy = strategies.parse(req.strategy)
        method = aggregation.parse(req.aggregation_method)
        parsed = self._parse(principal, req.qasm, req.shots)
        group, slots = self._route(principal, strategy, req.backends, parsed, req.shots)
        job = self._new_job(principal, strategy, _KINDS.get(strategy, JobKind.DIRECT), len(slots))
        job.aggregate, job.method, job.min_confidence = (
            req.aggregate,
            method.value,
            req.min_confidence,
        )
        job.groups, job.slots = [group], slots
        return job

    def plan_batch(self, principal: Principal, req: NetworkBatchRequest) -> NetworkJob:
        """A batch: each circuit routed by the strategy, every run in one job."""
        strategy = strategies.parse(req.strategy)
        method = aggregation.parse(req.aggregation_method)
        limit = self._settings.network_max_runs
        self._check_batch(principal, req, limit)
        groups: list[Group] = []
        slots: list[Slot] = []
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
        if len(slots) > limit:
            raise BadRequest(
                f"This batch makes {len(slots)} runs; at most {limit} may run in one batch",
                error_code="TOO_MANY_RUNS",
            )
        job = self._new_job(principal, strategy, JobKind.BATCH, len(slots))
        job.aggregate, job.method, job.min_confidence = (
            req.aggregate,
            method.value,
            req.min_confidence,
        )
        job.groups, job.slots = groups, slots
        return job

    def estimate(self, principal: Principal, req: EstimateRequest) -> EstimateResult:
        parsed = self._parse(principal, req.qasm, req.shots)
        found = estimate(self._candidates(req.backends), parsed, req.shots, self._state.situation())
        choices = strategies.every_choice(found)
        return EstimateResult(
            shots=req.shots,
            backends=[_estimate_info(e) for e in found],
            strategies={
                name: (ids if name in _MANY else (ids[0] if ids else None))
                for name, ids in choices.items()
            },
        )

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
        found = estimate(self._candidates(named), parsed, shots, self._state.situation())
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
        self, principal: Principal, strategy: strategies.Strategy, kind: JobKind, runs: int
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
            strategy=strategy,
            created_at=clock.now_iso(),
            groups=[],
            slots=[],
            result_blob=f"{blob_stem(principal.user_id, job_id)}.network.json",
            tenant=principal.tenant or None,
            quota_day=hold.day if hold is not None else None,
            quota_runs=runs,
        )


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
            "status": SKIPPED,
            "error_code": "BACKEND_RETIRED",
            "detail": detail,
        }
    if not e.online:
        return {
            "backend": backend.id,
            "status": SKIPPED,
            "error_code": "BACKEND_OFFLINE",
            "detail": f"{backend.supplier} is not reachable now; the backend was not run",
        }
    code, _, detail = (e.reasons[0] if e.reasons else "CIRCUIT_DOES_NOT_FIT: ").partition(": ")
    return {"backend": backend.id, "error_code": code, "detail": detail}


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
