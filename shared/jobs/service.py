"""The job service: one entrance to the job life cycle, its rooms behind it.

- `submit.Submissions`: accepting jobs (for the queue, in the request, a network job's runs);
- `worker.Worker`: a delivery of a `jobs` message (claim, run, complete);
- `supplier_tasks.SupplierTasks`: a job at a cloud supplier or its emulation (submit, poll,
  cancel);
- `runs.Runs`: what finishes a job (completion and charge, failure, what is given back);
- `metering.Metering`: what a job costs and its one ledger entry;
- here: reading a job, cancelling it, and the recovery timer's part.

Every step is safe to repeat. State moves only by ETag-guarded writes:

    queued --claim--> processing --> completed | failed
    queued --cancel--> cancelled
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import clock
from shared.accounts.quota import HOLD_SECONDS, Quotas
from shared.accounts.service import Principal
from shared.config import Settings
from shared.errors import Conflict
from shared.jobs.cancel import cancel_row
from shared.jobs.estimates import Estimator
from shared.jobs.messages import JobMessage
from shared.jobs.metering import Metering
from shared.jobs.models import CIRCUIT, Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.runs import Runs, TaskOutcome, TaskRunner
from shared.jobs.schemas import (
    JobAccepted,
    JobCancelled,
    JobCounts,
    JobError,
    JobProgress,
    JobResults,
    JobStatusResponse,
    ResultMetadata,
    RuntimeJobRequest,
    SyncResult,
    owned,
)
from shared.jobs.submit import QUEUED_MESSAGE, Submissions
from shared.jobs.supplier_tasks import SupplierTasks
from shared.jobs.worker import Worker
from shared.ledger.service import Ledger
from shared.suppliers.backends import find, public_id
from shared.suppliers.registry import SupplierRegistry

logger = logging.getLogger(__name__)

__all__ = ["QUEUED_MESSAGE", "JobService", "TaskOutcome", "TaskRunner", "Usage"]


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
        self._repo = repo
        self._quotas = quotas
        self._metering = Metering(settings, repo, ledger)
        runners = dict(tasks or {})
        self._runs = Runs(settings, repo, estimator, quotas, ledger, self._metering)
        self._supplier_tasks = SupplierTasks(settings, repo, suppliers, estimator, self._runs)
        self._worker = Worker(
            settings, repo, self._metering, self._runs, self._supplier_tasks, runners
        )
        self._submissions = Submissions(
            settings,
            repo,
            estimator,
            suppliers,
            quotas,
            ledger,
            self._metering,
            self._runs,
            self._worker,
            runners,
        )
        # the entrances each room serves
        self.submit = self._submissions.submit
        self.submit_to_supplier = self._submissions.submit_to_supplier
        self.submit_task = self._submissions.submit_task
        self.execute_sync = self._submissions.execute_sync
        self.parse = self._submissions.parse
        self.check_source = self._submissions.check_source
        self.create_child = self._submissions.create_child
        self.run_child = self._submissions.run_child
        self.run = self._worker.run

    def submit_to_backend(self, principal: Principal, request: RuntimeJobRequest) -> JobAccepted:
        """`request`'s circuit on its `backend_id`: the local simulator's queue (`submit`), or
        a supplier's backend (`submit_to_supplier`). Raises `NotFound` BACKEND_NOT_FOUND for
        an unknown backend, and what those raise."""
        backend = find(request.backend_id)
        if backend.local:
            return self.submit(principal, request.as_execute())
        supplier_request = request.as_supplier_request(backend.name)
        return self.submit_to_supplier(principal, backend.supplier, supplier_request)

    def ran(self, principal: Principal, job_id: str) -> SyncResult | JobAccepted:
        """`execute_sync`'s answer for the caller's job `job_id` made by an earlier attempt of
        the same request: its counts once completed, else the job to poll (its status says
        failed, for a failed one). Raises `NotFound` when there is no such job."""
        try:
            done = self.results(principal, job_id)
        except Conflict as exc:
            if exc.error_code != "JOB_NOT_COMPLETE":
                raise
            return self.accepted(principal, job_id)
        return SyncResult(
            job_id=done.job_id, status=done.status, counts=done.counts, metadata=done.metadata
        )

    def accepted(self, principal: Principal, job_id: str, kind: str = CIRCUIT) -> JobAccepted:
        """The submit's answer for the caller's job `job_id` of `kind`, as the job stands now
        (for a retry of the request that made it). Raises `NotFound` when there is none."""
        return self._submissions.answer(self._get(principal, job_id, kind))

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
            attempts=job.attempts or 0,
            progress=(
                JobProgress(shots_done=job.shots_done, shots=job.shots)
                if job.status is JobStatus.PROCESSING and job.shots_done is not None
                else None
            ),
            shots=job.shots,
            backend=public_id(job.supplier, job.backend),
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
        """Cancel a job that has not ended: queued, running here, or a cloud supplier's task
        (the supplier is asked to cancel it first). A message delivered later finds the job
        cancelled; a run going on here is stopped within about a second (its worker looks at
        the row while it runs: `Runs.watch`) and its completion, if it comes first, no longer
        applies. Nothing is charged, and the day's quota run is given back. Raises `Conflict`
        JOB_NOT_CANCELLABLE for a finished job, and the supplier's 503 when it cannot be
        reached."""

        def at_supplier(job: Job) -> None:
            if self._supplier_tasks.running(job):
                self._supplier_tasks.cancel(job)

        job, cancelled = cancel_row(
            job_id, lambda: self._get(principal, job_id, kind), self._repo.update, at_supplier
        )
        if cancelled:
            logger.info("job %s cancelled", job_id)
            self._runs.release(job)
        return JobCancelled(job_id=job_id, status=JobStatus.CANCELLED.value)

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

        def read(found_id: str) -> Job | None:
            job = self._repo.get(principal.user_id, found_id)
            return job if job is not None and job.kind == kind else None

        return owned(job_id, read)

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
