"""The network: backends across every supplier, routing, fan-out, batches, estimates.

A thin service over the rooms that do the work:

- `state.NetworkState`: the read side (catalog, status, queue depth, calibration, topology,
  metrics) and the situation plans are made in;
- `planner.Planner`: which backends each circuit runs on, and the estimates;
- `runs.Runs`: the orchestration's activities and the job's end;
- `results.Results`: a job as its owner reads it.

A network job is planned, recorded (circuit blobs, then its row), and run by the `network_job`
orchestration (`shared.orchestration.network_job`) through three activities that call back
in: `run_slot` (one run, a v1 job of its own, run as the worker would), `read_runs` (the runs a
cloud supplier is still running) and `finish` (the result). A job on one backend with nothing
to fall over to (`direct`) runs in the request instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from shared.accounts.quota import Quotas
from shared.accounts.service import Principal
from shared.config import Settings
from shared.errors import ApiError, Conflict, ServiceUnavailable
from shared.jobs.cancel import cancel_row
from shared.jobs.estimates import Estimator
from shared.jobs.inline import InRequest
from shared.jobs.models import JobStatus
from shared.jobs.repository import JobRepository, blob_stem
from shared.jobs.schemas import owned
from shared.jobs.service import JobService
from shared.network import aggregation, results
from shared.network.planner import Planner
from shared.network.repository import RUNNING, JobKind, NetworkJob, NetworkRepository
from shared.network.results import Results
from shared.network.runs import RunOutcome, Runs
from shared.network.schemas import (
    AggregateRequest,
    AggregateResult,
    AggregationMethodInfo,
    AggregationMethods,
    BackendInfo,
    BackendList,
    CalibrationInfo,
    EstimateRequest,
    EstimateResult,
    NetworkBatchRequest,
    NetworkExecuteRequest,
    NetworkStatus,
    QueueInfo,
    Topology,
)
from shared.network.state import NetworkState
from shared.orchestration.client import Orchestrations
from shared.orchestration.network_job import ORCHESTRATOR
from shared.suppliers.registry import SupplierRegistry

logger = logging.getLogger(__name__)

_WAIT_FIRST_S, _WAIT_MOST_S = 0.01, 0.05  # a point read each; the wait adds at most 50 ms
_POLL_FIRST_S, _POLL_MOST_S = 2, 60
_ERROR_STATUS = {"ALL_BACKENDS_FAILED": 503, "AGGREGATION_FAILED": 500}


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
        self._job_repo = job_repo
        self.state = NetworkState(settings, job_repo, suppliers, estimator)
        self._planner = Planner(settings, repo, jobs, self.state, quotas)
        self._results = Results(job_repo)
        self._runs = Runs(repo, jobs, job_repo, quotas, self._results)
        self._in_request = InRequest("network-direct")

    # -- the read side ----------------------------------------------------------------------------

    def backends(self) -> BackendList:
        return self.state.backends()

    def backend(self, backend_id: str) -> BackendInfo:
        return self.state.backend(backend_id)

    def calibration(self, backend_id: str) -> CalibrationInfo:
        return self.state.calibration(backend_id)

    def queue(self, backend_id: str) -> QueueInfo:
        return self.state.queue(backend_id)

    def status(self) -> NetworkStatus:
        return self.state.status()

    def topology(self) -> Topology:
        return self.state.topology()

    def metrics(self) -> dict[str, Any]:
        return self.state.metrics()

    # -- aggregation and estimates --------------------------------------------------------------

    @staticmethod
    def aggregate(req: AggregateRequest) -> AggregateResult:
        method = aggregation.parse(req.method_name)
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
        return self._planner.estimate(principal, req)

    # -- execution ------------------------------------------------------------------------------

    def execute(
        self, principal: Principal, req: NetworkExecuteRequest, orchestrations: Orchestrations
    ) -> dict[str, Any] | Accepted:
        """Plan, record and start a network job, then wait a bounded time for it.

        Raises what planning raises (`Planner.plan`), and the job's own failure (503
        ALL_BACKENDS_FAILED, 500 AGGREGATION_FAILED) when it fails within the wait."""
        job = self._planner.plan(principal, req)
        if job.kind is JobKind.DIRECT:
            return self._run_direct(job, req.qasm)
        self._start(job, [req.qasm], orchestrations)
        return self._wait(principal, job.job_id)

    def execute_batch(
        self, principal: Principal, req: NetworkBatchRequest, orchestrations: Orchestrations
    ) -> dict[str, Any] | Accepted:
        """A batch: each circuit routed by the strategy, every run in one orchestration."""
        job = self._planner.plan_batch(principal, req)
        self._start(job, [circuit.qasm for circuit in req.circuits], orchestrations)
        return self._wait(principal, job.job_id)

    def get(
        self, principal: Principal, job_id: str, *, include_failed: bool = True
    ) -> dict[str, Any]:
        """The job's status and, once it ended, its results (per circuit for a batch; without
        the circuits that failed when not `include_failed`)."""
        view = self._view(self._get(principal, job_id))
        if not include_failed and isinstance(view.get("circuits"), list):
            view["circuits"] = [c for c in view["circuits"] if c.get("status") != "failed"]
        return view

    def cancel(
        self, principal: Principal, job_id: str, orchestrations: Orchestrations
    ) -> dict[str, Any]:
        """Cancel a network job: its row first (so no new run starts), the orchestration,
        then every run not yet finished (a cloud task is cancelled at its supplier). Runs that
        finished keep their results. 409 JOB_NOT_CANCELLABLE once the job has ended."""
        job, _ = cancel_row(job_id, lambda: self._get(principal, job_id), self._repo.update)
        if job.kind is not JobKind.DIRECT:
            orchestrations.terminate(job_id, "cancelled by its owner")
        runs = list(self._job_repo.runs_of(job.user_id, job.job_id))
        self._runs.settle_quota(job, runs)
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

    def exists(self, user_id: str, job_id: str) -> bool:
        """True when `user_id` has network job `job_id`."""
        return self._repo.get(user_id, job_id) is not None

    # -- the orchestration's activities ---------------------------------------------------------

    def run_slot(self, user_id: str, job_id: str, slot: int, attempt: int) -> RunOutcome:
        """Run attempt `attempt` of slot `slot` (activity `network_run`; safe to repeat)."""
        return self._runs.run(user_id, job_id, slot, attempt)

    def read_runs(self, user_id: str, runs: Sequence[Mapping[str, Any]]) -> list[RunOutcome]:
        """The outcomes of runs still running (activity `network_poll`)."""
        return self._runs.read(user_id, [RunOutcome.from_dict(run) for run in runs])

    def finish(self, user_id: str, job_id: str) -> dict[str, str]:
        """Merge the runs into the job's result and end the job (activity `network_finish`)."""
        return self._runs.finish(user_id, job_id)

    # -- recording, starting, waiting -----------------------------------------------------------

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
            self._runs.give_back(job)
            raise
        self._runs.accepted(job)

    def _run_direct(self, job: NetworkJob, source: str) -> dict[str, Any] | Accepted:
        """A job on one backend with nothing to fall over to: its one run runs in this request
        (as `POST /execute-sync` does), bounded by the sync timeout; a cloud run is submitted
        and polled by the queue. Past the bound the job to poll is returned and the run goes
        on; the job settles when it is next read (`_view`)."""
        self._record(job, [source])
        run = self._in_request.submit(self._runs.run_attempt, job, 0, 0)
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
            self._runs.give_back(job)
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

    def _get(self, principal: Principal, job_id: str) -> NetworkJob:
        return owned(job_id, lambda found: self._repo.get(principal.user_id, found))

    def _view(self, job: NetworkJob) -> dict[str, Any]:
        if job.kind is JobKind.DIRECT:
            return self._direct_view(job)
        return self._results.view(job)

    def _direct_view(self, job: NetworkJob) -> dict[str, Any]:
        """A direct job's view, from its one run; the row is settled once the run ended."""
        shown = results.base(job)
        run = self._job_repo.get(job.user_id, job.child_id(0, 0))
        if run is None or not run.status.terminal:
            if run is not None and not job.status.terminal:
                shown["status"] = RUNNING
            return shown | {"backend": job.slots[0].backends[0]}
        group = self._results.group_result(job, 0, {run.job_id: run})
        if not job.status.terminal:
            self._runs.end(job, [group], [run])
            shown = results.base(job)
        return shown | results.public_group(group, single=True)
