"""Network jobs: rows in `networkjobs`, and each user's round-robin turn in `routing`.

A network job (PartitionKey = owner, RowKey = job id) holds its plan: the circuits
(`groups`: circuit blob, shots, name) and the slots, each one run of one circuit with the
backends it may use in order (`ordered` falls over along them; every other strategy has one).
A slot's attempt k is a v1 job row of its own in `jobs`, `<job id>-<slot>-<k>`, run by the
job service like any other job; the network job's result blob is written once they finished.
The row's status is a `JobStatus`: a network job is shown `running` while its runs run, but
its row moves only from queued:

    queued --(its runs end)--> completed | failed
    queued --cancel--> cancelled
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared import events
from shared.jobs.models import Job, JobStatus, run_id, run_of
from shared.network.strategies import Strategy
from shared.storage import (
    LOST,
    Lost,
    Storage,
    get_or_none,
    insert_new,
    rows,
    until_written,
    update_row,
    write_if_unchanged,
)
from shared.storage.query import literal

RUNNING = "running"  # how a queued network job whose runs have started is shown
NETWORK_JOBS_TABLE = "networkjobs"
ROUTING_TABLE = "routing"
# What a listing reads of a network job's row (`summaries`)
_SUMMARY_FIELDS = [
    "PartitionKey",
    "RowKey",
    "status",
    "kind",
    "strategy",
    "created_at",
    "completed_at",
    "groups",
    "slots",
]


@dataclass
class Group:
    """One circuit of the job."""

    circuit_blob: str
    shots: int
    num_qubits: int = 0
    qasm_hash: str = ""
    name: str | None = None
    fidelity: dict[str, float] = field(default_factory=dict)  # per backend id, for weighting
    # Backends named for the circuit that it was not run on, and why (`failed` in the result).
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Slot:
    """One run of circuit `group`: on `backends[0]`, then (ordered) on the next on failure."""

    group: int
    backends: list[str]


class JobKind(StrEnum):
    """How a network job runs: `direct` (one run, in the request), `single` (one circuit on
    backends in order, falling over), `all` (one circuit on every backend at once) or `batch`
    (several circuits, each by the strategy)."""

    DIRECT = "direct"
    SINGLE = "single"
    ALL = "all"
    BATCH = "batch"


@dataclass
class NetworkJob:
    user_id: str
    job_id: str
    status: JobStatus
    kind: JobKind
    strategy: Strategy
    created_at: str
    groups: list[Group]
    slots: list[Slot]
    aggregate: bool = True
    method: str = "weighted_average"
    min_confidence: float | None = None
    result_blob: str = ""
    completed_at: str | None = None
    error_code: str | None = None
    error_detail: str | None = None
    # FinOps: the owner's tenant at submit (its runs carry it to the ledger) and the runs of
    # the daily quota reserved at submit (`quota_runs` on `quota_day`)
    tenant: str | None = None
    quota_day: str | None = None
    quota_runs: int = 0
    etag: str | None = None

    @property
    def keys(self) -> tuple[str, str]:
        return self.user_id, self.job_id

    @property
    def fans_out(self) -> bool:
        """Each circuit runs on every backend at once (strategy `all`)."""
        return self.strategy is Strategy.ALL

    def child_id(self, slot: int, attempt: int) -> str:
        return run_id(self.job_id, slot, attempt)

    def runs_finished(self, runs: Iterable[Job]) -> int:
        """How many of its slots have run to their end (`runs`: its runs' rows): the last
        attempt ended and falls over to no other backend (it completed or was cancelled, or
        it failed on the slot's last backend)."""
        last: dict[int, tuple[int, Job]] = {}
        for run in runs:
            found = run_of(run.job_id)
            if found is None or found[0] != self.job_id or found[1] >= len(self.slots):
                continue
            _, slot, attempt = found
            if slot not in last or attempt > last[slot][0]:
                last[slot] = (attempt, run)
        return sum(
            1
            for slot, (attempt, run) in last.items()
            if run.status.terminal
            and (
                run.status is not JobStatus.FAILED or attempt + 1 >= len(self.slots[slot].backends)
            )
        )

    def to_entity(self) -> dict[str, Any]:
        return rows.to_entity(
            self, partition="user_id", key="job_id", json_fields=("groups", "slots")
        )

    @classmethod
    def from_entity(cls, entity: Any) -> NetworkJob:
        convert: dict[str, Callable[[Any], Any]] = {
            "status": lambda value: JobStatus(str(value)),
            "kind": lambda value: JobKind(str(value)),
            "strategy": lambda value: Strategy(str(value)),
            "groups": lambda text: [Group(**g) for g in json.loads(text)],
            "slots": lambda text: [Slot(**s) for s in json.loads(text)],
        }
        return rows.from_entity(cls, entity, partition="user_id", key="job_id", convert=convert)


class NetworkRepository:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def insert(self, job: NetworkJob) -> bool:
        job.etag = insert_new(self._table, job.to_entity())
        if job.etag is not None:
            _published(job)
        return job.etag is not None

    def get(self, user_id: str, job_id: str) -> NetworkJob | None:
        row = get_or_none(self._table, user_id, job_id)
        return NetworkJob.from_entity(row) if row is not None else None

    def update(self, job: NetworkJob, changes: Mapping[str, Any]) -> bool:
        """Apply `changes` if the row is unchanged since it was read; False otherwise."""
        if not update_row(self._table, job, changes):
            return False
        if "status" in changes:
            _published(job)
        return True

    def summaries(self, user_id: str, created_at_most: str | None = None) -> Iterator[NetworkJob]:
        """`user_id`'s network jobs (those created at or before `created_at_most`, when
        given), in storage order: one storage call per 1000 rows."""
        query = f"PartitionKey eq {literal(user_id)}"
        if created_at_most:
            query += f" and created_at le {literal(created_at_most)}"
        for row in self._table.query_entities(query, select=_SUMMARY_FIELDS):
            yield NetworkJob.from_entity(row)

    def delete_quietly(self, job: NetworkJob) -> None:
        try:
            self._table.delete_entity(partition_key=job.user_id, row_key=job.job_id)
        except Exception:  # an orphan row of a job never started: harmless
            pass

    def next_turn(self, user_id: str, attempts: int = 8) -> int:
        """The user's round-robin turn, moved on by one (an ETag-guarded counter)."""
        table = self._storage.table(ROUTING_TABLE)

        def attempt(n: int) -> int | Lost:
            row = get_or_none(table, user_id, "round_robin")
            turn = int(row["turn"]) if row is not None else 0
            entity = {"PartitionKey": user_id, "RowKey": "round_robin", "turn": turn + 1}
            return turn if write_if_unchanged(table, entity, row) else LOST

        return until_written(
            attempt,
            busy=lambda: RuntimeError("could not take a round-robin turn: too much contention"),
            tries=attempts,
        )

    @property
    def _table(self) -> Any:
        return self._storage.table(NETWORK_JOBS_TABLE)


def _published(job: NetworkJob) -> None:
    """The job's status, with its planned runs (all finished once it completed or failed;
    how many is not known here while it is queued or once it was cancelled)."""
    planned = len(job.slots)
    ended = job.status in (JobStatus.COMPLETED, JobStatus.FAILED)
    progress = events.Progress(planned, planned if ended else None)
    events.publish(
        events.Event(
            "network_job", job.job_id, job.status.value, user_id=job.user_id, progress=progress
        )
    )
