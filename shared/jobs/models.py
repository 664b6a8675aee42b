"""The job as the service sees it, and its row in the `jobs` table.

PartitionKey = owner's user id, RowKey = job id: a lookup with another user's key cannot find
the row. Terminal states never change. A `processing` job names the queue delivery that claimed
it (message id and dequeue count), so a redelivery of that same message can tell that its
previous holder died, while a duplicate message for the same job leaves the holder alone.

A cloud supplier's job stays `processing` while the supplier runs it: the worker submits it,
records the supplier's task id, and polls it through delayed `poll` messages (`poll_seq`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.storage import rows


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


# The statuses a job (v1 or network) never leaves, by value (what events and rows carry)
TERMINAL_STATUSES = frozenset(status.value for status in JobStatus if status.terminal)
BACKEND_AER = "qiskit_aer"
# What a job runs: a circuit, or a task of another kind (`JobService` runs it with the runner
# registered for its kind; its request is the payload blob, in `circuit_blob`).
CIRCUIT = "circuit"
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_RUN_ID = re.compile(rf"({_UUID})-(\d+)-(\d+)")


def run_id(network_job_id: str, slot: int, attempt: int) -> str:
    """The id of attempt `attempt` of slot `slot` of a network job: a job of its own."""
    return f"{network_job_id}-{slot}-{attempt}"


def run_of(job_id: str) -> tuple[str, int, int] | None:
    """`(network job id, slot, attempt)` of a network job's run `job_id` (see `run_id`);
    None for any other job."""
    found = _RUN_ID.fullmatch(job_id)
    return (found.group(1), int(found.group(2)), int(found.group(3))) if found else None


def network_job_of(job_id: str) -> str | None:
    """The network job whose run `job_id` is, or None."""
    run = run_of(job_id)
    return run[0] if run else None


@dataclass
class Job:
    user_id: str
    job_id: str
    status: JobStatus
    shots: int
    created_at: str
    backend: str = BACKEND_AER
    num_qubits: int = 0
    qasm_hash: str = ""
    circuit_blob: str = ""
    result_blob: str = ""
    enqueued: bool = False
    enqueued_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    claim_message_id: str | None = None
    claim_dequeue_count: int | None = None
    claimed_at: str | None = None
    attempts: int | None = None  # how many times a worker has started it (claims)
    shots_done: int | None = None  # of the current attempt, while it runs (when the engine says)
    error_code: str | None = None
    error_detail: str | None = None
    execution_time_ms: float | None = None
    method: str | None = None
    # A supplier's job (POST /api/v1/{supplier}/execute); None for the local simulator.
    supplier: str | None = None
    mode: str | None = None  # "cloud" | "emulated"
    supplier_job_id: str | None = None  # the supplier's task id, once submitted
    submitted_at: str | None = None
    # The poll chain of a cloud task: only the message carrying this number may poll.
    poll_seq: int | None = None
    # FinOps: the owner's tenant at submit, the job's tags (JSON text), and the day of the
    # daily quota it reserved (None: it reserved nothing, e.g. a network job's run).
    tenant: str | None = None
    tags: str | None = None
    quota_day: str | None = None
    estimated_run_s: float | None = None  # its own run, estimated at submit (local, emulated)
    estimated_cost: str | None = None  # a cloud job's price at submit (decimal text)
    budget_hold: str | None = None  # what it holds of its budgets (`BudgetHold.encode()`)
    kind: str = CIRCUIT
    # The reservation of today's quota this job holds until its row exists (shared.accounts.quota)
    quota_hold: str | None = None
    # Small payloads live in the row instead of a blob (one round trip fewer each way): the
    # circuit (or a task's request) and the result (JSON text). Empty: see the blob.
    circuit: str | None = None
    result: str | None = None
    # What the completed job is charged (JSON of `shared.ledger.service.Cost`), written with
    # the completion, so its ledger entry can be made again from the row alone; `owed` while
    # a job that no queue message backs (a run in the request) may not be in the ledger yet.
    charge: str | None = None
    owed: bool | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def keys(self) -> tuple[str, str]:
        return self.user_id, self.job_id

    @property
    def budget_ref(self) -> str:
        """The job's name on its tenant's budget counters (budgets are per tenant, not per
        user): its row's own (`quota_hold` holds the row's nonce), so a refused request that
        reused the job's id can never close the job's hold."""
        return f"{self.user_id}:{self.quota_hold or self.job_id}"

    @property
    def project(self) -> str:
        """The `project` tag, "" when none."""
        return str(json.loads(self.tags).get("project", "")) if self.tags else ""

    def to_entity(self) -> dict[str, Any]:
        return rows.to_entity(self, partition="user_id", key="job_id")

    @classmethod
    def from_entity(cls, entity: Any) -> Job:
        convert = {"status": lambda value: JobStatus(str(value))}
        return rows.from_entity(cls, entity, partition="user_id", key="job_id", convert=convert)
