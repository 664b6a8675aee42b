"""`/rerank` jobs: accepted like circuits (quota, payload blob, row, message on `jobs`), run by
the queue worker with `run_task`, read back with `get`. The engine (numpy, scipy, Qiskit) is
imported by `run_task` only, so accepting and reading reranks adds nothing to a cold start."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError

from shared.accounts.service import Principal
from shared.config import RerankSettings
from shared.errors import ValidationFailed
from shared.jobs.models import Job
from shared.jobs.schemas import JobAccepted, JobCancelled, JobError
from shared.jobs.service import JobService, TaskOutcome
from shared.rerank.schemas import RankedCandidate, RerankJob, RerankRequest, SolverReport, Tier

KIND = "rerank"
_BACKEND_PREFIX = "rerank:"


def check_quantum_k(request: RerankRequest, settings: RerankSettings) -> None:
    """The quantum tiers choose from a shortlist of `qubits` candidates: k must fit in it."""
    if request.tier.quantum and request.k > settings.qubits:
        raise ValidationFailed(
            f"The quantum tiers choose from a shortlist of {settings.qubits} candidates "
            f"(qubits), so k must be at most {settings.qubits}, not {request.k}"
        )


def seed_for(job_id: str) -> int:
    """A sampling seed of the job's own, so a rerun of the job samples the same."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big")


def run_task(settings: RerankSettings, job: Job, payload: str) -> TaskOutcome:
    """The job worker's runner for rerank jobs."""
    from shared.rerank.engine import reranker

    try:
        request = RerankRequest.model_validate_json(payload)
    except ValidationError as exc:  # accepted under other limits: the app changed since
        raise ValidationFailed(
            f"The stored request is no longer valid: {exc.error_count()} error(s)"
        ) from None
    result = reranker(settings).run(request, seed=seed_for(job.job_id))
    stored: dict[str, Any] = {
        "ranked_candidates": [item.model_dump() for item in result.ranked],
        "solver": result.solver.model_dump(),
        "processing_time_seconds": result.processing_time_seconds,
    }
    return TaskOutcome(
        result=stored,
        execution_time_ms=result.processing_time_seconds * 1000.0,
        method=result.solver.method,
    )


class RerankService:
    def __init__(self, settings: RerankSettings, jobs: JobService) -> None:
        self._settings = settings
        self._jobs = jobs

    def submit(self, principal: Principal, request: RerankRequest) -> JobAccepted:
        """Queue a rerank. Raises `ValidationFailed` when a quantum tier's k does not fit its
        shortlist, and what `JobService.submit_task` raises."""
        check_quantum_k(request, self._settings)
        payload = request.model_dump_json(exclude={"job_id", "tags"})
        return self._jobs.submit_task(
            principal,
            KIND,
            payload,
            backend=_BACKEND_PREFIX + request.tier.value,
            shots=self._settings.shots if request.tier.quantum else 0,
            job_id=request.job_id,
            tags=request.tags,
        )

    def get(self, principal: Principal, job_id: str) -> RerankJob:
        job, stored = self._jobs.task(principal, job_id, KIND)
        result = stored or {}
        return RerankJob(
            job_id=job.job_id,
            status=job.status.value,
            tier=Tier(job.backend.removeprefix(_BACKEND_PREFIX)),
            ranked_candidates=[
                RankedCandidate.model_validate(item) for item in result.get("ranked_candidates", [])
            ],
            processing_time_seconds=result.get("processing_time_seconds"),
            solver=SolverReport.model_validate(result["solver"]) if result else None,
            error=JobError.of(job),
            created_at=job.created_at,
            completed_at=job.completed_at,
        )

    def cancel(self, principal: Principal, job_id: str) -> JobCancelled:
        return self._jobs.cancel(principal, job_id, KIND)
