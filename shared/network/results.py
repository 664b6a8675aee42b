"""A network job's results as its owner reads them, from its runs' rows.

`group_result` merges one circuit's runs (each backend's counts, what failed and why, and for
a fan-out the aggregate); `Results.view` shapes a job for `GET /api/v2/network/execute/{id}`
and the submit's answer: while it runs, its progress; once it ended, its stored result in the
shape of its strategy (one backend's counts, every backend's and their aggregate, or a
batch's circuits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.network import aggregation
from shared.network.repository import RUNNING, Group, JobKind, NetworkJob

SKIPPED = "skipped"  # a named backend left out because it is unavailable (never charged)
ResultOf = Callable[[Job], "Mapping[str, Any] | None"]


def base(job: NetworkJob) -> dict[str, Any]:
    """What every view of `job` shows: its status as its row has it, and its error."""
    shown: dict[str, Any] = {
        "job_id": job.job_id,
        "status": job.status.value,
        "strategy": job.strategy.value,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
    }
    if job.status is JobStatus.FAILED:
        shown["error"] = {"error_code": job.error_code or "", "detail": job.error_detail or ""}
    return shown


class Results:
    def __init__(self, job_repo: JobRepository) -> None:
        self._job_repo = job_repo

    def view(self, job: NetworkJob) -> dict[str, Any]:
        """A job that is not direct: its progress while it runs, its result once it ended."""
        shown = base(job)
        stored = self._job_repo.get_result(job.result_blob) if job.status.terminal else None
        if stored is None:
            runs = list(self._job_repo.runs_of(job.user_id, job.job_id))
            if runs and job.status is JobStatus.QUEUED:
                shown["status"] = RUNNING
            shown["progress"] = {
                "runs_started": len(runs),
                "runs_finished": job.runs_finished(runs),
                "runs_planned": len(job.slots),
            }
            return shown
        groups = stored["groups"]
        if job.kind is JobKind.BATCH:
            return shown | {"circuits": groups}
        return shown | public_group(groups[0], single=job.kind is JobKind.SINGLE)

    def group_result(self, job: NetworkJob, index: int, runs: Mapping[str, Job]) -> dict[str, Any]:
        """Circuit `index`'s result from its runs' rows (`runs`: every run, by id)."""
        return group_result(job, index, runs, self._job_repo.result_of)


def group_result(
    job: NetworkJob, index: int, runs: Mapping[str, Job], result_of: ResultOf
) -> dict[str, Any]:
    """Circuit `index`'s result from its runs' rows (`runs`: every run, by id; `result_of`
    reads a completed run's result)."""
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
                stored = result_of(child)
                if stored is not None:
                    results.append(_run_result(backend_id, child, stored, group))
                    continue
            failed.append(_failure(backend_id, child))
    failed += group.skipped
    fan_out = job.fans_out
    # a fan-out reports each backend it was asked for: ran, or skipped as unavailable
    shown = results + [
        s | {"counts": None} for s in group.skipped if s.get("status") == SKIPPED and fan_out
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


def public_group(group: Mapping[str, Any], *, single: bool) -> dict[str, Any]:
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
