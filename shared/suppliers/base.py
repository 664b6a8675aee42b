"""What every supplier adapter is: the catalog types, the adapter protocol, states and errors.

A supplier (Azure Quantum, IBM Quantum, AWS Braket) has providers, and a provider has targets
(backends). Each adapter runs a target two ways:

- `cloud`, when the supplier's credentials are configured: `submit` sends the circuit with the
  supplier's SDK, idempotently (the job's client token is the supplier's idempotency key, so a
  redelivered message finds the task it already created); `poll` reads the task's state and,
  once it completed, its counts; `cancel` asks the supplier to stop it. None of them blocks:
  the job service polls through delayed queue messages.
- `emulated`, when they are not: `emulate` runs the same target locally (calibrated noise,
  the supplier's local simulator, or an ideal simulator) and the result says so.

Counts always come back in one convention, qiskit's: a key per distinct outcome, classical bits
highest first, registers separated by a space in the order the circuit declares them (last
register leftmost), exactly as `qiskit.result.Result.get_counts()` writes them. Each adapter
translates its supplier's convention into this one.

Errors: an adapter raises `SupplierUnavailable` (503: the queue retries) for what may pass
(timeouts, 429, 5xx, a connection refused) and `SupplierRejected` (the job fails with the
message) for what will not (a refused circuit, bad credentials, a task the supplier failed).
Messages are sanitised with `sanitise` first: no tokens, keys, signed URLs or tracebacks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from shared.circuits import ParsedCircuit
from shared.errors import ApiError, ServiceUnavailable, one_line


class Mode(StrEnum):
    CLOUD = "cloud"
    EMULATED = "emulated"


class DeviceKind(StrEnum):
    QPU = "qpu"
    SIMULATOR = "simulator"  # ideal: the emulation is noiseless too
    EMULATOR = "emulator"  # a supplier's noisy emulator of a QPU (Quantinuum's "E" targets)
    SYNTAX_CHECKER = "syntax_checker"  # validates and returns all-zero counts
    ANALOG = "analog"  # not gate-model (QuEra Aquila): listed, refuses circuits


class SupplierState(StrEnum):
    """Our reading of a supplier task's state; every supplier status maps to one of these."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # a status no table knows: keep polling, never guess a result

    @property
    def terminal(self) -> bool:
        return self in (SupplierState.COMPLETED, SupplierState.FAILED, SupplierState.CANCELLED)


def map_status(table: Mapping[str, SupplierState], raw: object) -> SupplierState:
    """`raw` (a supplier's status, any case) through `table`; UNKNOWN for anything else."""
    key = str(getattr(raw, "value", raw) or "").strip().upper()
    return table.get(key, SupplierState.UNKNOWN)


@dataclass(frozen=True)
class Target:
    """One backend of a supplier, as the catalog describes it.

    `name` is the supplier's own name (`ionq.qpu.aria-1`, `ibm_brisbane`, `sv1`); `ref` is what
    the supplier's API addresses (a Braket device ARN, an Azure provider id), when that differs.
    `native_gates` are qiskit gate names. `coupling` lists directed or undirected qubit pairs;
    None means all-to-all unless `topology` names the layout (IBM's coupling maps come with
    their SDK snapshots). `calibration` names the data file (under `shared/suppliers/data/`)
    or the SDK snapshot the emulation uses.
    """

    supplier: str
    provider: str
    name: str
    num_qubits: int
    kind: DeviceKind
    description: str = ""
    native_gates: tuple[str, ...] = ()
    coupling: tuple[tuple[int, int], ...] | None = None
    topology: str = ""  # in words, where `coupling` is not listed here (IBM's heavy-hex)
    mid_circuit_measurement: bool = False
    reset: bool = False
    classical_control: bool = False
    ref: str = ""
    region: str = ""
    available: bool = True  # False: retired or offline at the supplier, listed for reference
    calibration: str = ""
    emulation_max_qubits: int | None = None  # the local stand-in's limit, when it has its own

    @property
    def gate_model(self) -> bool:
        return self.kind is not DeviceKind.ANALOG


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    description: str
    targets: tuple[Target, ...]

    @property
    def num_qubits(self) -> int:
        return max((t.num_qubits for t in self.targets), default=0)


@dataclass(frozen=True)
class SubmitRequest:
    """A circuit to send to a supplier under `client_token`: the job's idempotency key at the
    supplier (Braket's clientToken, IBM's job tag, the Azure job id's seed). The job service
    derives it from the job's row (owner, id, creation time), so it is the same on every
    redelivery and never shared by two users who chose the same job id."""

    client_token: str
    target: Target
    parsed: ParsedCircuit
    shots: int


@dataclass(frozen=True)
class TaskState:
    """What a poll found. `counts` (qiskit's convention) once COMPLETED; `reason` when FAILED."""

    state: SupplierState
    raw_status: str
    counts: dict[str, int] | None = None
    reason: str | None = None
    execution_time_ms: float | None = None  # as the supplier reports it, when it does
    queue_time_ms: float | None = None


@dataclass(frozen=True)
class EmulatedRun:
    counts: dict[str, int]
    execution_time_ms: float
    method: str  # what ran: "aer density_matrix, restricted noise model of fake_brisbane", ...
    details: dict[str, Any] = field(default_factory=dict)


class SupplierAdapter(Protocol):
    """One supplier's real path and emulation. SDKs are imported inside the methods only."""

    supplier_id: str

    def configured(self) -> bool:
        """True when credentials are set (mode `cloud`); reads settings, never the network."""
        ...

    def check_credentials(self) -> str | None:
        """None when the configured credentials work; else a sanitised reason. Network call."""
        ...

    def submit(self, request: SubmitRequest) -> str:
        """Create the supplier task (or find the one this job id already created); its id."""
        ...

    def poll(self, target: Target, task_id: str) -> TaskState: ...

    def cancel(self, target: Target, task_id: str) -> None: ...

    def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun: ...


# HTTP statuses that may pass (timeout, too early, too many requests); every 5xx does too.
_TRANSIENT_HTTP = frozenset({408, 425, 429})


def transient_http_status(status: int | None) -> bool:
    """True when a supplier's HTTP status says to try again later (the queue retries)."""
    return status is not None and (status in _TRANSIENT_HTTP or status >= 500)


class SupplierUnavailable(ServiceUnavailable):
    """The supplier could not be reached or asked us to wait: retry later."""

    code = "SUPPLIER_UNAVAILABLE"


class SupplierRejected(ApiError):
    """The supplier refused the task or failed it; retrying will not help. Safe to show."""

    status = 502
    code = "SUPPLIER_ERROR"


_SECRET_PATTERNS = (
    re.compile(
        r"(?i)\b(sig|se|sp|sv|skoid|sktid|token|apikey|api_key|key|secret|password|signature"
        r"|x-amz-signature|x-amz-credential|x-amz-security-token|credential)=[^&\s\"']+"
    ),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)(x-ms-quantum-api-key|authorization)[\"']?\s*[:=]\s*[\"']?"
        r"(?:(?:apikey|bearer|basic)\s+)?[^\s\"',}]+"
    ),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
)
_MAX_REASON = 500


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    for separator in ("=", ":"):
        if separator in text:
            return text.split(separator, 1)[0] + separator + "***"
    if " " in text:  # "Bearer <token>"
        return text.split(" ", 1)[0] + " ***"
    return "***"


def sanitise(text: object) -> str:
    """One bounded line of `text` with signed-URL parameters, tokens and keys masked."""
    line = one_line(str(text), _MAX_REASON * 2)
    for pattern in _SECRET_PATTERNS:
        line = pattern.sub(_mask, line)
    return line[:_MAX_REASON]
