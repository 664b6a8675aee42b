"""Request and response models of the v2 network API (`/api/v2/network`).

Every success is answered as `{"success": true, "data": <model>}` and every error as
`{"success": false, "detail", "error_code", "request_id"}` (`shared.http`, `envelope=True`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import ValidationFailed
from shared.jobs.schemas import BELL_QASM, SDK_BACKEND
from shared.suppliers.backends import backend_id, find, supplier_target
from shared.suppliers.catalog import supplier

MAX_BACKENDS_LISTED = 32


class NetworkExecuteRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "qasm": BELL_QASM,
                    "backends": ["qiskit_aer", "ionq_simulator", "ibm_brisbane"],
                    "strategy": "all",
                    "shots": 1000,
                    "aggregate": True,
                    "aggregation_method": "weighted_average",
                }
            ]
        },
    )

    qasm: str = Field(min_length=1, description="OpenQASM 2.0 or 3 source")
    backends: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_BACKENDS_LISTED,
        description="Backend ids to choose from (GET /api/v2/network/backends); every online "
        "backend when omitted",
    )
    strategy: str = Field(
        "fastest",
        max_length=40,
        description="fastest, best_fidelity, round_robin, cost_optimized, ordered or all",
    )
    shots: int = Field(1024, ge=1, le=100_000)
    aggregate: bool = Field(True, description="strategy all: merge the backends' counts")
    aggregation_method: str = Field("weighted_average", max_length=40)
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="Fail (AGGREGATION_FAILED) below this agreement"
    )


class BatchCircuit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qasm: str = Field(min_length=1)
    shots: int | None = Field(None, ge=1, le=100_000, description="This circuit's shots")
    name: str | None = Field(None, max_length=100)


class NetworkBatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "circuits": [{"qasm": BELL_QASM, "name": "bell"}],
                    "strategy": "fastest",
                    "shots": 500,
                }
            ]
        },
    )

    circuits: list[BatchCircuit] = Field(min_length=1, max_length=100)
    backends: list[str] | None = Field(None, min_length=1, max_length=MAX_BACKENDS_LISTED)
    strategy: str = Field("fastest", max_length=40)
    shots: int = Field(1024, ge=1, le=100_000, description="Shots of circuits that name none")
    aggregate: bool = True
    aggregation_method: str = Field("weighted_average", max_length=40)
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)


class AggregateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = Field(min_length=1, max_length=100)
    counts: dict[str, int] = Field(min_length=1)
    weight: float | None = Field(None, gt=0.0, description="The backend's weight (fidelity)")


class AggregateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"backend": "ibm_brisbane", "counts": {"00": 480, "11": 470, "01": 50}},
                        {"backend": "ionq_simulator", "counts": {"00": 510, "11": 490}},
                    ],
                    "aggregation_method": "weighted_average",
                }
            ]
        },
    )

    results: list[AggregateInput] = Field(min_length=1, max_length=64)
    aggregation_method: str | None = Field(
        None,
        max_length=40,
        description="weighted_average (by default), majority_vote, confidence_weighted or "
        "median: the name `/execute` takes",
    )
    method: str | None = Field(
        None,
        max_length=40,
        description="Deprecated: `aggregation_method`",
        json_schema_extra={"deprecated": True},
    )
    shots: int | None = Field(None, ge=1, le=10_000_000, description="Counts to produce")

    @model_validator(mode="after")
    def _one_method(self) -> AggregateRequest:
        given = {self.aggregation_method, self.method} - {None}
        if len(given) > 1:
            raise ValueError("aggregation_method and method (its deprecated name) differ")
        return self

    @property
    def method_name(self) -> str:
        return self.aggregation_method or self.method or "weighted_average"


class EstimateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"qasm": BELL_QASM, "shots": 1000, "backends": ["qiskit_aer", "ionq_simulator"]}
            ]
        },
    )

    qasm: str = Field(min_length=1)
    shots: int = Field(1024, ge=1, le=100_000)
    backends: list[str] | None = Field(None, min_length=1, max_length=MAX_BACKENDS_LISTED)


# -- responses ------------------------------------------------------------------------------------


class PriceInfo(BaseModel):
    amount: float
    currency: str = Field(description="USD, or HQC (Quantinuum credits)")
    formula: str = Field(description="The formula applied, with this circuit's numbers")
    source: str
    as_of: str
    pricebook_version: str


class BackendInfo(BaseModel):
    id: str = Field(examples=["ibm_brisbane"])
    supplier: str = Field(examples=["ibm_quantum"])
    provider: str
    target: str = Field(description="The supplier's own name for the backend")
    kind: str
    qubits: int | None = Field(description="None for the local simulator (your tier's limit)")
    native_gates: list[str]
    status: str = Field(
        description="online, offline (its supplier is unreachable now) or retired (no longer "
        "offered: never run; see `successor`)"
    )
    status_detail: str | None = Field(None, description="Why it is not online, when known")
    successor: str | None = Field(None, description="A retired backend's successor's id")
    queue_depth: int = Field(description="Open jobs of this gateway on the backend")
    mode: str = Field(description="local, emulated or cloud")
    price: dict[str, Any] | None = Field(description="The price book's entry")


class BackendList(BaseModel):
    backends: list[BackendInfo]


class QubitInfo(BaseModel):
    qubit: int
    t1_us: float | None
    t2_us: float | None
    readout_error: float | None


class GateInfo(BaseModel):
    gate: str
    qubits: list[int] | None = Field(description="None: the same figure for every qubit/pair")
    error: float | None
    duration_ns: float | None


class CalibrationInfo(BaseModel):
    backend: str
    source: str
    timestamp: str | None
    kind: str = Field(description="snapshot, data_file or ideal")
    qubits: list[QubitInfo]
    gates: list[GateInfo]
    notes: str


class QueueInfo(BaseModel):
    backend: str
    queue_depth: int
    estimated_wait_s: float
    source: str = Field(description="What the figure counts")


class BackendStatus(BaseModel):
    id: str
    status: str = Field(description="online, offline or retired")
    queue_depth: int


class NetworkStatus(BaseModel):
    overall_status: str = Field(description="operational, degraded or down")
    total_capacity: int = Field(description="Qubits across the online gate-model backends")
    active_jobs: int = Field(description="Jobs queued or running on the network")
    backends: list[BackendStatus]


class TopologyNode(BaseModel):
    id: str
    type: str = Field(description="supplier, provider or backend")
    name: str
    qubits: int | None = None
    coupling: list[list[int]] | str | None = Field(
        None, description="Qubit pairs, `all-to-all`, or None for a simulator"
    )


class TopologyEdge(BaseModel):
    source: str
    target: str


class Topology(BaseModel):
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]


class AggregateResult(BaseModel):
    aggregated_counts: dict[str, int]
    aggregation_confidence: float
    weights: dict[str, float]
    aggregation_method: str
    method: str = Field(description="Deprecated: `aggregation_method`")


class AggregationMethodInfo(BaseModel):
    name: str
    summary: str
    formula: str
    when_it_helps: str


class AggregationMethods(BaseModel):
    methods: list[AggregationMethodInfo]
    note: str


class BackendEstimateInfo(BaseModel):
    backend: str
    fits: bool
    reasons: list[str] = Field(description="Why it does not fit")
    status: str
    mode: str
    cost: PriceInfo | None = Field(description="What this run costs (0 when emulated)")
    device_cost: PriceInfo | None = Field(description="What the real device would cost")
    estimated_wait_s: float | None
    estimated_run_s: float | None = Field(description="How long the run takes as it runs now")
    device_run_s: float | None = Field(description="The real device's estimated run time")
    fidelity: float | None = Field(description="Estimated success probability after layout")


class EstimateResult(BaseModel):
    shots: int
    backends: list[BackendEstimateInfo]
    strategies: dict[str, str | list[str] | None] = Field(
        description="The backend(s) each strategy would choose (None: none fits)"
    )


class RunProgress(BaseModel):
    runs_started: int = Field(description="Runs whose job exists (one per backend tried)")
    runs_finished: int = Field(description="Slots whose run ended with nothing to fall over to")
    runs_planned: int = Field(description="One per backend of `all`, one per circuit otherwise")


class NetworkJobResult(BaseModel):
    """A network job. While it runs, `progress`. Single-backend strategies fill `backend` and
    `counts`; `all` fills `results` (one entry per backend: `completed` with its counts, or
    `skipped` with the reason when the backend is unavailable, counts null),
    `aggregated_counts`, `aggregation_confidence`, `weights` and `failed` (every backend that
    gave no counts, and why); a batch fills `circuits`."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: str = Field(description="queued, running, completed, failed or cancelled")
    strategy: str
    created_at: str
    completed_at: str | None = None
    error: dict[str, str] | None = None
    progress: RunProgress | None = None
    backend: str | None = Field(None, description="Single-backend strategies: where it ran")
    counts: dict[str, int] | None = None
    mode: str | None = Field(None, description="local, emulated or cloud")
    run_job_id: str | None = Field(None, description="The run's own job (a v1 job)")
    queue_time_s: float | None = None
    execution_time_s: float | None = None
    results: list[dict[str, Any]] | None = Field(None, description="`all`: each backend's run")
    aggregated_counts: dict[str, int] | None = None
    aggregation_confidence: float | None = None
    weights: dict[str, float] | None = None
    aggregation_method: str | None = None
    distributions: dict[str, dict[str, float]] | None = Field(
        None, description="Each backend's distribution, when they agree too little"
    )
    failed: list[dict[str, Any]] | None = Field(
        None, description="Every backend that gave no counts, and why"
    )
    circuits: list[dict[str, Any]] | None = Field(None, description="A batch: each circuit's")


class NetworkJobCancelled(BaseModel):
    job_id: str
    status: str = Field(examples=["cancelled"])


class Metrics(BaseModel):
    generated_at: str
    last_hour: dict[str, Any] = Field(
        description="jobs_by_status, jobs, throughput_per_minute, success_rate, shots_executed, "
        "and per backend p50/p95 queue_time_ms and execution_time_ms"
    )
    last_day: dict[str, Any]


# -- the same requests as softqcos-sdk sends them (`client.jobs.estimate`, `client.backends`'
# estimates, `client.batch`) -----------------------------------------------------------------------


class RuntimeEstimateRequest(BaseModel):
    """What `client.jobs.estimate` sends: the circuit with its own count of qubits and gates."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "qasm": BELL_QASM,
                    "shots": 1000,
                    "backend_id": "qiskit_aer",
                    "qubits": 2,
                    "gates": 2,
                }
            ]
        },
    )

    qasm: str = Field(min_length=1, description="OpenQASM 2.0 or 3 source")
    shots: int = Field(1024, ge=1, le=100_000)
    backend_id: str = Field(SDK_BACKEND, min_length=1, max_length=100)
    qubits: int | None = Field(
        None, ge=0, description="Accepted; the estimate sizes the circuit from `qasm` itself"
    )
    gates: int | None = Field(
        None, ge=0, description="Accepted; the estimate sizes the circuit from `qasm` itself"
    )

    def as_estimate(self) -> EstimateRequest:
        """The estimate on `backend_id`'s backend (`NotFound` BACKEND_NOT_FOUND for none)."""
        return EstimateRequest(
            qasm=self.qasm, shots=self.shots, backends=[find(self.backend_id).id]
        )


class SupplierEstimateQuery(BaseModel):
    """What `client.backends.{ibm,azure,braket}_estimate` sends, as query parameters: the
    circuit, the backend under the supplier's own field name, and the shots."""

    model_config = ConfigDict(extra="forbid")

    circuit: str = Field(min_length=1, max_length=16_000, description="OpenQASM 2.0 or 3")
    backend: str | None = Field(None, min_length=1, max_length=100, description="IBM")
    target: str | None = Field(None, min_length=1, max_length=100, description="Azure Quantum")
    device: str | None = Field(None, min_length=1, max_length=100, description="AWS Braket")
    shots: int = Field(1024, ge=1, le=100_000)

    def named(self) -> str:
        """The backend's name, given under exactly one of the three fields."""
        given = [n for n in (self.backend, self.target, self.device) if n is not None]
        if len(given) != 1:
            raise ValidationFailed("Name the backend once: `backend`, `target` or `device`")
        return given[0]

    def as_estimate(self, supplier_name: str) -> EstimateRequest:
        """The estimate on the backend of supplier `supplier_name` this query names
        (`NotFound` SUPPLIER_NOT_FOUND or BACKEND_NOT_FOUND for none)."""
        target = supplier_target(supplier(supplier_name).id, self.named())
        return EstimateRequest(qasm=self.circuit, shots=self.shots, backends=[backend_id(target)])


class SdkBatchJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    circuit: str = Field(min_length=1, description="OpenQASM 2.0 or 3 source")
    backend: str = Field(min_length=1, max_length=100, description="The same for every job")
    shots: int = Field(1024, ge=1, le=100_000)


class SdkBatchRequest(BaseModel):
    """What `client.batch.submit` sends: circuits on one backend."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "SDK Batch",
                    "jobs": [{"circuit": BELL_QASM, "backend": "qiskit_aer", "shots": 100}],
                    "max_concurrent": 10,
                }
            ]
        },
    )

    name: str = Field("SDK Batch", max_length=80, description="Names its circuits `<name> <i>`")
    jobs: list[SdkBatchJob] = Field(min_length=1, max_length=100)
    max_concurrent: int = Field(
        10, ge=1, le=100, description="Accepted; the batch's runs all start at once"
    )

    def as_batch(self) -> NetworkBatchRequest:
        """The network batch on the jobs' one backend; `ValidationFailed` when they name
        several, `NotFound` BACKEND_NOT_FOUND for an unknown one."""
        named = {find(job.backend).id for job in self.jobs}
        if len(named) != 1:
            raise ValidationFailed(
                f"jobs: every job of a batch names the same backend (these name {len(named)})"
            )
        circuits = [
            BatchCircuit(qasm=job.circuit, shots=job.shots, name=f"{self.name} {i}")
            for i, job in enumerate(self.jobs)
        ]
        return NetworkBatchRequest.model_validate(
            {"circuits": circuits, "backends": list(named), "strategy": "fastest"}
        )


class BatchListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=1000)
    status: str | None = Field(None, max_length=20)

    def listing(self) -> dict[str, Any]:
        """The parameters of `JobListQuery` this query gives: batches only."""
        given = {"limit": self.limit, "cursor": self.cursor, "status": self.status}
        return {k: v for k, v in given.items() if v is not None} | {"type": "batch"}


class BatchResultsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_failed: bool = Field(True, description="False: leave out the circuits that failed")
