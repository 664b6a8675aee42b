"""A network job's runs: the orchestration's activities, and the job's end.

The `network_job` orchestration (`shared.orchestration.network_job`) calls three activities:
`run` (one attempt of one slot: a v1 job of its own, created and run as the worker would),
`read` (the runs a cloud supplier is still running) and `finish` (merge the runs into the job's
result and end it). Each run's outcome is a `RunOutcome`; the orchestration sees it as the
small dict `to_dict` gives (durable payloads are JSON), and never an exception for a backend's
failure, so one failed backend does not sink the others (`task_all`).

The day's quota: a job reserves one run per slot at submit (`shared.accounts.quota`); its end
gives back what never ran (`settle_quota`), and a job never accepted gives back all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared import clock
from shared.accounts.quota import Hold, Quotas
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.service import JobService
from shared.network.repository import NetworkJob, NetworkRepository
from shared.network.results import Results
from shared.suppliers.backends import find

logger = logging.getLogger(__name__)


class RunStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RUNNING = "running"  # a cloud task the queue is polling


@dataclass(frozen=True)
class RunOutcome:
    """How attempt `attempt` of slot `slot` stands, on backend `backend` (its network id)."""

    slot: int
    attempt: int
    backend: str
    run_id: str | None
    status: RunStatus
    error_code: str | None = None
    detail: str | None = None

    @classmethod
    def of_run(cls, slot: int, attempt: int, backend: str, child: Job) -> RunOutcome:
        """The outcome the run's row shows."""
        if child.status is JobStatus.FAILED:
            return cls(
                slot,
                attempt,
                backend,
                child.job_id,
                RunStatus.FAILED,
                child.error_code or "FAILED",
                child.error_detail,
            )
        status = {
            JobStatus.COMPLETED: RunStatus.COMPLETED,
            JobStatus.CANCELLED: RunStatus.CANCELLED,
        }.get(child.status, RunStatus.RUNNING)
        return cls(slot, attempt, backend, child.job_id, status)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunOutcome:
        return cls(
            slot=int(data["slot"]),
            attempt=int(data["attempt"]),
            backend=str(data["backend"]),
            run_id=None if data.get("run_id") is None else str(data["run_id"]),
            status=RunStatus(str(data["status"])),
            error_code=data.get("error_code"),
            detail=data.get("detail"),
        )

    def to_dict(self) -> dict[str, Any]:
        """What the orchestration holds (`error_code` and `detail` only on a failure)."""
        outcome: dict[str, Any] = {
            "slot": self.slot,
            "attempt": self.attempt,
            "backend": self.backend,
            "run_id": self.run_id,
            "status": self.status.value,
        }
        if self.error_code:
            outcome |= {"error_code": self.error_code, "detail": self.detail or ""}
        return outcome


class Runs:
    def __init__(
        self,
        repo: NetworkRepository,
        jobs: JobService,
        job_repo: JobRepository,
        quotas: Quotas,
        results: Results,
    ) -> None:
        self._repo = repo
        self._jobs = jobs
        self._job_repo = job_repo
        self._quotas = quotas
        self._results = results

    # -- the activities -------------------------------------------------------------------------

    def run(self, user_id: str, job_id: str, slot: int, attempt: int) -> RunOutcome:
        """Run attempt `attempt` of slot `slot` (activity `network_run`; safe to repeat)."""
        job = self._repo.get(user_id, job_id)
        if job is None:
            return RunOutcome(
                slot, attempt, "", None, RunStatus.FAILED, "JOB_NOT_FOUND", "no such job"
            )
        return self.run_attempt(job, slot, attempt)

    def run_attempt(self, job: NetworkJob, slot: int, attempt: int) -> RunOutcome:
        """Create attempt `attempt` of `job`'s slot `slot` (unless it exists) and run it."""
        plan = job.slots[slot]
        backend = find(plan.backends[attempt])
        run_id = job.child_id(slot, attempt)
        if job.status.terminal:
            return RunOutcome(slot, attempt, backend.id, run_id, RunStatus.CANCELLED)
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
        child = self._jobs.run_child(job.user_id, run_id)
        return RunOutcome.of_run(slot, attempt, backend.id, child)

    def read(self, user_id: str, runs: Sequence[RunOutcome]) -> list[RunOutcome]:
        """The outcomes of runs still running, read again (activity `network_poll`)."""
        found = []
        for run in runs:
            child = self._job_repo.get(user_id, str(run.run_id)) if run.run_id else None
            if child is None:
                found.append(
                    RunOutcome(
                        run.slot, run.attempt, run.backend, None, RunStatus.FAILED, "JOB_NOT_FOUND"
                    )
                )
            else:
                found.append(RunOutcome.of_run(run.slot, run.attempt, run.backend, child))
        return found

    def finish(self, user_id: str, job_id: str) -> dict[str, str]:
        """Merge the runs into the job's result and end the job (activity `network_finish`).
        The runs' rows are the record; the orchestrator's outcomes only say they all ended."""
        job = self._repo.get(user_id, job_id)
        if job is None:
            return {"status": "missing"}
        if job.status.terminal:
            return {"status": job.status.value}
        runs = {run.job_id: run for run in self._job_repo.runs_of(user_id, job_id)}
        groups = [self._results.group_result(job, g, runs) for g in range(len(job.groups))]
        self._job_repo.put_result(job.result_blob, {"groups": groups})
        self.end(job, groups, runs.values())
        return {"status": job.status.value}

    # -- the end --------------------------------------------------------------------------------

    def end(
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
            self.settle_quota(job, runs)
            return
        fresh = self._repo.get(job.user_id, job.job_id)  # another writer ended it first
        if fresh is not None:
            job.status, job.completed_at = fresh.status, fresh.completed_at
            job.error_code, job.error_detail = fresh.error_code, fresh.error_detail

    # -- the day's quota ------------------------------------------------------------------------

    @staticmethod
    def hold(job: NetworkJob) -> Hold | None:
        """The reservation `job` made (its hold is named by the job id)."""
        return Hold(job.user_id, job.quota_day, job.job_id) if job.quota_day else None

    def accepted(self, job: NetworkJob) -> None:
        """The job's row exists: its reservation holds until it ends."""
        self._quotas.accepted(self.hold(job))

    def give_back(self, job: NetworkJob) -> None:
        """Give back every run reserved for a job that was never accepted (or was removed
        before it started). Logged, never raised: the quota's sweep gives back a hold left."""
        try:
            if not self._quotas.release_hold(self.hold(job)):
                self.settle_quota(job, (), ref=f"{job.job_id}.unstarted")  # hold dropped
        except Exception as exc:
            logger.warning("job %s: quota not given back now: %s", job.job_id, type(exc).__name__)

    def settle_quota(self, job: NetworkJob, runs: Iterable[Job], ref: str = "") -> None:
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
