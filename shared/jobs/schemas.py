"""Request and response models of the v1 job API (the OpenAPI spec is generated from these)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)

from shared.errors import NotFound
from shared.jobs.models import Job, JobStatus

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)


def is_job_id(text: str) -> bool:
    """True when `text` is an id a job can have (others are never sent to storage, which
    answers some of them with a 400)."""
    return _JOB_ID.match(text) is not None


Found = TypeVar("Found")


def owned(job_id: str, read: Callable[[str], Found | None]) -> Found:
    """The caller's job `job_id`, as `read(job_id)` finds it among the caller's own; 404
    JOB_NOT_FOUND when it is not there or `job_id` is not a job id (never read)."""
    found = read(job_id) if is_job_id(job_id) else None
    if found is None:
        raise NotFound(f"Job {job_id[:100]} not found", error_code="JOB_NOT_FOUND")
    return found


BELL_QASM = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n"
)


def _if_none(value: Any) -> bool:
    return value is None


_TAG = r"^[A-Za-z0-9._:/-]{1,64}$"
Tags = dict[
    Annotated[str, StringConstraints(pattern=_TAG)],
    Annotated[str, StringConstraints(max_length=256)],
]
TAGS_FIELD: Any = Field(
    None,
    max_length=10,
    description="Up to 10 labels for cost reports; `project` groups the job's charges "
    "in the ledger's chargeback",
    examples=[{"project": "vqe-study"}],
)
JOB_ID_FIELD: Any = Field(
    None,
    pattern=JOB_ID_PATTERN,
    description="Your own id for the job, unique among your jobs; generated when omitted",
)


class ExecuteRequest(BaseModel):
    """A circuit to run on the local Aer simulator."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"qasm": BELL_QASM}]})

    qasm: str = Field(
        min_length=1,
        description='OpenQASM 2.0 (`include "qelib1.inc";`) or OpenQASM 3 '
        '(`include "stdgates.inc";`) source',
    )
    shots: int = Field(1024, ge=1, le=100_000, description="Shots (at most your tier's max_shots)")
    job_id: str | None = JOB_ID_FIELD
    tags: Tags | None = TAGS_FIELD


class SupplierExecuteRequest(BaseModel):
    """A circuit for a supplier's backend. `circuit` is accepted for `qasm`, and the backend may
    be named `target` (azure_quantum) or `device` (braket), as the QCOS Python client sends."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"qasm": BELL_QASM, "backend": "ionq.simulator", "shots": 100}]
        },
    )

    qasm: str | None = Field(None, min_length=1, description="OpenQASM 2.0 or 3 source")
    circuit: str | None = Field(None, min_length=1, description="Another name for `qasm`")
    backend: str | None = Field(
        None, min_length=1, max_length=100, description="The backend (target) name"
    )
    target: str | None = Field(
        None, min_length=1, max_length=100, description="Another name for `backend` (azure_quantum)"
    )
    device: str | None = Field(
        None, min_length=1, max_length=100, description="Another name for `backend` (braket)"
    )
    shots: int = Field(1024, ge=1, le=100_000, description="Shots (at most your tier's max_shots)")
    job_id: str | None = JOB_ID_FIELD
    tags: Tags | None = TAGS_FIELD

    @model_validator(mode="after")
    def _one_circuit(self) -> SupplierExecuteRequest:
        if (self.qasm is None) == (self.circuit is None):
            raise ValueError("give the circuit as exactly one of `qasm` or `circuit`")
        named = [n for n in ("backend", "target", "device") if getattr(self, n) is not None]
        if len(named) != 1:
            raise ValueError("name the backend with exactly one of `backend`, `target`, `device`")
        return self

    @property
    def source(self) -> str:
        return self.qasm or self.circuit or ""

    @property
    def backend_field(self) -> tuple[str, str]:
        """(the field that named the backend, the name)."""
        for name in ("backend", "target", "device"):
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise AssertionError("validated: one backend field is set")

    def as_execute(self) -> ExecuteRequest:
        return ExecuteRequest(
            qasm=self.source, shots=self.shots, job_id=self.job_id, tags=self.tags
        )


class JobAccepted(BaseModel):
    job_id: str
    status: str = Field(examples=["queued"])
    message: str = Field(examples=["Job queued for processing"])
    estimated_time_seconds: int = Field(
        description="From recent jobs' measured execution times and the queue's depth"
    )


class JobError(BaseModel):
    error_code: str
    detail: str

    @classmethod
    def of(cls, job: Job) -> JobError | None:
        """A failed job's error; None for a job in any other state."""
        if job.status is not JobStatus.FAILED:
            return None
        return cls(error_code=job.error_code or "FAILED", detail=job.error_detail or "")


class JobCounts(BaseModel):
    counts: dict[str, int]


class JobProgress(BaseModel):
    shots_done: int
    shots: int


class JobStatusResponse(BaseModel):
    job_id: str
    status: str = Field(description="queued, processing, completed, failed or cancelled")
    result: JobCounts | None = Field(None, exclude_if=_if_none, description="When completed")
    error: JobError | None = Field(None, exclude_if=_if_none, description="When failed")
    created_at: str
    started_at: str | None = Field(None, description="When its current (or last) attempt began")
    completed_at: str | None = None
    attempts: int = Field(
        0,
        description="How many times a worker started it: more than 1 when it was retried "
        "(its worker stopped, or a transient failure)",
    )
    progress: JobProgress | None = Field(
        None,
        exclude_if=_if_none,
        description="While it runs, when the simulator can tell: the shots its current attempt "
        "has run (a circuit that measures mid-way, or an emulated device's noise, runs every "
        "shot on its own)",
    )
    # What the job was asked to run (also what the QCOS Python client reads from this body)
    shots: int = Field(examples=[1024])
    backend: str = Field(examples=["qiskit_aer"])
    num_qubits: int = Field(examples=[2])


class ResultMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    shots: int
    backend: str = Field(examples=["qiskit_aer"])
    execution_time_ms: float
    num_qubits: int
    num_clbits: int
    method: str = Field(
        description="What made the counts: the Aer method (stabilizer, statevector, "
        "matrix_product_state), the emulation that stood in for a backend, or `cloud`"
    )
    measured_all: bool = Field(
        description="True when the circuit measured nothing and all qubits were measured at the end"
    )
    qasm_version: int
    depth: int
    operations: int
    supplier: str | None = Field(None, exclude_if=_if_none, examples=["ibm_quantum"])
    mode: str | None = Field(
        None,
        exclude_if=_if_none,
        description="`cloud` (the supplier ran it) or `emulated` (a local stand-in ran it)",
    )
    supplier_job_id: str | None = Field(None, exclude_if=_if_none)
    queue_time_ms: float | None = Field(
        None,
        exclude_if=_if_none,
        description="From acceptance until a worker or the supplier started it",
    )


class JobResults(BaseModel):
    job_id: str
    status: str = Field(default="completed", description="Always completed (else 409)")
    counts: dict[str, int] = Field(description="Bitstrings in Qiskit's order (last bit first)")
    metadata: ResultMetadata

    # metadata's, repeated at the top level where the QCOS Python client reads them

    @computed_field(examples=[1024])  # type: ignore[prop-decorator]
    @property
    def shots(self) -> int:
        return self.metadata.shots

    @computed_field(examples=["qiskit_aer"])  # type: ignore[prop-decorator]
    @property
    def backend(self) -> str:
        return self.metadata.backend

    @computed_field(examples=[2])  # type: ignore[prop-decorator]
    @property
    def num_qubits(self) -> int:
        return self.metadata.num_qubits


class JobCancelled(BaseModel):
    job_id: str
    status: str = Field(examples=["cancelled"])


class SyncResult(BaseModel):
    job_id: str
    status: str = Field(examples=["completed"])
    counts: dict[str, int]
    metadata: ResultMetadata


# -- the caller's jobs, newest first (GET /api/v1/jobs) -----------------------------------------

LISTED_STATUSES = ("queued", "processing", "running", "completed", "failed", "cancelled")
LISTED_TYPES = ("job", "rerank", "network", "batch")


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100, description="Jobs per page")
    cursor: str | None = Field(
        None, max_length=1000, description="`next_cursor` of the previous page"
    )
    status: str | None = Field(
        None,
        pattern="^(" + "|".join(LISTED_STATUSES) + ")$",
        description="Only jobs in this status (`processing` and `running` both mean a job "
        "that runs: v1 jobs say processing, network jobs running)",
    )
    backend: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Only jobs on this backend (an id of GET /api/v2/network/backends, or a "
        "name that resolves to one); a network job matches when it may use it",
    )
    type: str | None = Field(
        None,
        pattern="^(" + "|".join(LISTED_TYPES) + ")$",
        description="Only jobs of this type: job (v1), rerank, network (v2) or batch (v2)",
    )


class JobSummary(BaseModel):
    job_id: str
    type: str = Field(description="job (v1), rerank, network (v2) or batch (v2)")
    status: str = Field(
        description="As the job's own status path says it: queued, processing (v1) or running "
        "(network), completed, failed or cancelled"
    )
    backend: str | None = Field(
        description="The backend's id; for a network job, its one backend when it names only one",
        examples=["qiskit_aer"],
    )
    backends: list[str] = Field(description="Every backend the job may run on")
    strategy: str | None = Field(None, exclude_if=_if_none, description="A network job's")
    shots: int = Field(description="As asked (a batch: over its circuits)", examples=[1024])
    created_at: str
    completed_at: str | None = None
    location: str = Field(
        description="Where to read its status and results", examples=["/api/v1/status/abc"]
    )


class JobList(BaseModel):
    jobs: list[JobSummary] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None: last")


# -- the same requests as softqcos-sdk's `client.jobs` sends them ---------------------------------

# The client's default backend for jobs and estimates
SDK_BACKEND = "statevector_sim"


class RuntimeJobRequest(BaseModel):
    """A circuit for a backend, as `client.jobs.submit` and `client.submit` send it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"qasm": BELL_QASM, "shots": 1024, "backend_id": "qiskit_aer"}]
        },
    )

    qasm: str = Field(min_length=1, description="OpenQASM 2.0 or 3 source")
    shots: int = Field(1024, ge=1, le=100_000, description="Shots (at most your tier's max_shots)")
    backend_id: str = Field(
        SDK_BACKEND,
        min_length=1,
        max_length=100,
        description="A backend id (GET /api/v1/backends), or a name that resolves to one",
    )
    job_id: str | None = JOB_ID_FIELD
    tags: Tags | None = TAGS_FIELD
    metadata: Tags | None = Field(
        None, max_length=10, description="Labels the client sends (`mitigation`): kept as tags"
    )

    @model_validator(mode="after")
    def _few_labels(self) -> RuntimeJobRequest:
        if len(self.labels or {}) > 10:
            raise ValueError("`tags` and `metadata` together hold at most 10 labels")
        return self

    @property
    def labels(self) -> dict[str, str] | None:
        merged = {**(self.metadata or {}), **(self.tags or {})}
        return merged or None

    def as_execute(self) -> ExecuteRequest:
        return ExecuteRequest(
            qasm=self.qasm, shots=self.shots, job_id=self.job_id, tags=self.labels
        )

    def as_supplier_request(self, backend: str) -> SupplierExecuteRequest:
        return SupplierExecuteRequest.model_validate(
            {
                "qasm": self.qasm,
                "backend": backend,
                "shots": self.shots,
                "job_id": self.job_id,
                "tags": self.labels,
            }
        )


class RuntimeJobListQuery(BaseModel):
    """`client.jobs.list`'s query parameters (`backend_id` for `backend`)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=1000)
    status: str | None = Field(None, max_length=20)
    backend_id: str | None = Field(None, min_length=1, max_length=100)

    def listing(self) -> dict[str, Any]:
        """The parameters of `JobListQuery` this query gives."""
        given = {
            "limit": self.limit,
            "cursor": self.cursor,
            "status": self.status,
            "backend": self.backend_id,
        }
        return {k: v for k, v in given.items() if v is not None}
