"""The caller's jobs, v1 and v2 together, newest first (`GET /api/v1/jobs`).

It lives here because the network is the layer that sees both tables. Both are partitioned
by owner with the job id as RowKey (a uuid, or the caller's own id), so storage order says
nothing of time; an inverted-time index row would add a write to every submit, whose budgets
are 1 and 3 calls. So a page reads the caller's partition of each table, only the fields a
listing shows and only the rows created at or before the cursor's time, and sorts them here:
one storage call per table per 1000 rows read, so 2 calls for a caller with fewer than 1000
jobs at or before the cursor, and one more for each open network job the page shows whose
runs began after the cursor's time. The runs of network jobs (rows `<job id>-<slot>-<attempt>`
of `jobs`) are not listed: they tell their network job that it runs.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence

from shared.errors import NotFound, ValidationFailed
from shared.jobs.models import CIRCUIT, Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.jobs.schemas import JobList, JobListQuery, JobSummary
from shared.network.repository import RUNNING, JobKind, NetworkJob, NetworkRepository
from shared.suppliers.backends import find, of_job

# (created_at, job id, table): the order of a listing, newest first; unique per caller
Key = tuple[str, str, str]
_V1, _V2 = "1", "2"
_RUNNING = ("processing", "running")
# Where a job of another kind than a circuit is read (a circuit's: its v1 status)
_TASK_PATHS = {"rerank": "/rerank/{job_id}"}


class JobListing:
    def __init__(self, jobs: JobRepository, network: NetworkRepository) -> None:
        self._jobs = jobs
        self._network = network

    def page(self, user_id: str, query: JobListQuery) -> JobList:
        """One page of `user_id`'s jobs matching `query`, newest first. Raises
        `ValidationFailed` for a cursor this did not make, `NotFound` BACKEND_NOT_FOUND for
        an unknown `backend`."""
        after = _decode(query.cursor) if query.cursor else None
        backend = find(query.backend).id if query.backend else None
        since = after[0] if after else None
        network = {n.job_id: n for n in self._network.summaries(user_id, since)}
        runs: dict[str, list[Job]] = {}
        found: list[tuple[Key, JobSummary]] = []
        for job in self._jobs.summaries(user_id, since):
            parent = _parent(job.job_id, network)
            if parent is not None:
                runs.setdefault(parent, []).append(job)
            else:
                found.append(((job.created_at, job.job_id, _V1), _job(job)))
        for n in network.values():
            # a cursor's scan misses runs begun after its time: an open job asks for its own
            seen = runs.get(n.job_id) or (
                [] if after is None or n.status.terminal else self._runs(n)
            )
            found.append(((n.created_at, n.job_id, _V2), _network_job(n, seen)))
        listed = sorted(
            (
                (key, summary)
                for key, summary in found
                if (after is None or key < after) and _matches(summary, query, backend)
            ),
            key=lambda item: item[0],
            reverse=True,
        )
        shown = listed[: query.limit]
        more = len(listed) > query.limit
        return JobList(
            jobs=[summary for _, summary in shown],
            next_cursor=_encode(shown[-1][0]) if more else None,
        )

    def _runs(self, job: NetworkJob) -> list[Job]:
        return list(self._jobs.runs_of(job.user_id, job.job_id))


def _parent(job_id: str, network: Mapping[str, NetworkJob]) -> str | None:
    """The network job whose run `job_id` is (`<job id>-<slot>-<attempt>`), if any."""
    parent, *numbers = job_id.rsplit("-", 2)
    if len(numbers) == 2 and all(n.isdigit() for n in numbers) and parent in network:
        return parent
    return None


def _job(job: Job) -> JobSummary:
    kind = job.kind or CIRCUIT
    if kind == CIRCUIT:
        backend = _backend_id(job)
        kind, location = "job", f"/api/v1/status/{job.job_id}"
    else:
        backend = job.backend
        location = _TASK_PATHS.get(kind, "/api/v1/status/{job_id}").format(job_id=job.job_id)
    return JobSummary(
        job_id=job.job_id,
        type=kind,
        status=job.status.value,
        backend=backend,
        backends=[backend],
        strategy=None,
        shots=job.shots or 0,
        created_at=job.created_at,
        completed_at=job.completed_at,
        location=location,
    )


def _backend_id(job: Job) -> str:
    try:
        return of_job(job.supplier, job.backend).id
    except NotFound:  # a backend the catalog no longer has: its own name
        return job.backend


def _network_job(job: NetworkJob, runs: Sequence[Job]) -> JobSummary:
    backends = list(dict.fromkeys(b for slot in job.slots for b in slot.backends))
    return JobSummary(
        job_id=job.job_id,
        type="batch" if job.kind is JobKind.BATCH else "network",
        status=_network_status(job, runs),
        backend=backends[0] if len(backends) == 1 else None,
        backends=backends,
        strategy=job.strategy.value,
        shots=sum(g.shots for g in job.groups),
        created_at=job.created_at,
        completed_at=job.completed_at,
        location=f"/api/v2/network/execute/{job.job_id}",
    )


def _network_status(job: NetworkJob, runs: Sequence[Job]) -> str:
    """What the job's own status path says, from its row and its runs' rows: its row once
    ended, `running` once a run began; a direct job whose one run ended, that run's end (its
    row is settled at its next read)."""
    if job.status.terminal or not runs:
        return job.status.value
    if job.kind is JobKind.DIRECT and runs[0].status.terminal:
        completed = runs[0].status is JobStatus.COMPLETED
        return (JobStatus.COMPLETED if completed else JobStatus.FAILED).value
    return RUNNING


def _matches(summary: JobSummary, query: JobListQuery, backend: str | None) -> bool:
    if query.type is not None and summary.type != query.type:
        return False
    if backend is not None and backend not in summary.backends:
        return False
    if query.status is None or summary.status == query.status:
        return True
    return summary.status in _RUNNING and query.status in _RUNNING


def _encode(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode(cursor: str) -> Key:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        key = None
    # Only text a listing's own key holds: a lone surrogate or a control character would
    # reach the storage filter (`created_at le '...'`), which cannot send or take it.
    if not (
        isinstance(key, list)
        and len(key) == 3
        and all(isinstance(k, str) and k and k.isprintable() for k in key)
        and key[2] in (_V1, _V2)
    ):
        raise ValidationFailed("cursor: not a cursor this API gave (value_error)")
    return key[0], key[1], key[2]
