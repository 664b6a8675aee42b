"""Azure Quantum: IonQ, Quantinuum and Rigetti targets of one workspace (azure-quantum 3.10.0).

The workspace is made once, on first use: from the connection string (no ARM call; the key
travels as `x-ms-quantum-api-key`), or from resource id + location with the managed identity (one
ARM call finds the workspace's endpoint). Facts: docs/supplier-sdk-facts.md.

Submit. The Azure job id is uuid5(`_JOB_NAMESPACE`, client token), so a redelivered message finds
the job it created: GET jobs/{id}; only on 404 ask a SAS for the container `job-{id}`
(POST storage/sasUri), write the blob `inputData` (overwriting: a retry after a half-done submit
writes the same bytes again), and PUT jobs/{id} (a 409 there means another delivery won the
race: its job is ours). The payload is the one the SDK's own backends send for the provider:

- IonQ: `ionq.circuit.v1` JSON (`shared.circuits.to_ionq`);
- Quantinuum: OpenQASM 2 (`honeywell.openqasm.v1`, `qiskit.qasm2.dumps`);
- Rigetti: QIR, base profile (`qir.v1`, written by the qdk's `QSharpBackend` as
  `azure.quantum.qiskit` does, after transpiling to the SDK's QIR gates).

The job's metadata carries the circuit's register layout (`qcos_layout`: register names and
clbits, and for IonQ which qubit each clbit measures), because `poll` gets only the task id
and needs it to turn the results into qiskit's keys.

Poll. GET the job and map its status through `STATUS_MAP`. Once Succeeded, read `rawOutputData`
through a fresh SAS and translate it:

- IonQ: a probability histogram over integers, bit i = qubit i (`to_ionq.counts_from_histogram`);
- Quantinuum: for each classical register, one string per shot, highest bit first;
- Rigetti (`microsoft.quantum-results.v2`): a histogram of outcomes, each a tuple of registers
  (the last declared first; a lone register is a bare list) of bits, highest first. Shots
  with a lost-qubit marker (anything but 0 or 1) are left out, as the SDK does.

A Failed job's reason is its `errorData`, sanitised. Cancel is POST jobs/{id}:cancel.

Every call goes through the workspace's generated REST operations (and the storage clients)
with no SDK retries and bounded timeouts. The SDK's own methods retry ten times with backoff
and sleep as long as a Retry-After asks, which would hold a function for minutes; here the
queue is the retry loop. `supplier_error` sorts what goes wrong, in one place.

Emulated, every target runs `emulation.emulate_target`; an IonQ circuit is first translated
as for the cloud, so the emulation refuses what IonQ would.

azure.quantum (and qiskit, the qdk and azure.storage) are imported inside the methods only.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.circuits import ParsedCircuit
from shared.circuits.bitorder import (
    MidCircuitMeasurement,
    clbit_sources,
    qiskit_key,
    with_measurements,
)
from shared.circuits.to_ionq import counts_from_histogram, to_ionq
from shared.config import Settings
from shared.errors import ApiError, CircuitDoesNotFit, one_line
from shared.suppliers import emulation
from shared.suppliers.base import (
    EmulatedRun,
    SubmitRequest,
    SupplierRejected,
    SupplierState,
    SupplierUnavailable,
    Target,
    TaskState,
    map_status,
    sanitise,
    transient_http_status,
)

# Azure job ids are uuid5(this, client token). Never change it: redelivered messages of jobs
# submitted before would create second jobs.
_JOB_NAMESPACE = uuid.UUID("8037bfb3-01d4-4432-ad73-d9d533449a91")

# Every JobStatus of azure-quantum 3.10.0 (azure.quantum.JobStatus), upper-cased for `map_status`.
STATUS_MAP: dict[str, SupplierState] = {
    "QUEUED": SupplierState.QUEUED,
    "WAITING": SupplierState.QUEUED,
    "EXECUTING": SupplierState.RUNNING,
    "FINISHING": SupplierState.RUNNING,
    # Asked to stop, not stopped yet: it may still finish with results.
    "CANCELLATIONREQUESTED": SupplierState.RUNNING,
    "CANCELLING": SupplierState.RUNNING,
    "SUCCEEDED": SupplierState.COMPLETED,
    "COMPLETED": SupplierState.COMPLETED,
    "FAILED": SupplierState.FAILED,
    "CANCELLED": SupplierState.CANCELLED,
}

# Per request: no SDK retries (the queue retries), and no request hanging for the SDK's 300 s.
_CALL_OPTIONS: dict[str, Any] = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 60}
_INPUT_BLOB = "inputData"
_METADATA_LAYOUT = "qcos_layout"
_METADATA_JOB_ID = "qcos_job_id"
_QIR_ENTRY_POINT = "ENTRYPOINT__main"
# The gates azure.quantum.qiskit's QIR backends accept (`backend.QIR_BASIS_GATES`; a test
# checks they agree), less reset and measure, which the circuit keeps as they are.
QIR_BASIS_GATES = (
    "ccx", "cx", "cy", "cz", "rx", "rxx", "crx", "ry", "ryy", "cry", "rz", "rzz", "crz",
    "h", "s", "sx", "sdg", "swap", "t", "tdg", "x", "y", "z", "id", "ch",
)  # fmt: skip


@dataclass(frozen=True)
class JobFormat:
    """What a provider's jobs declare, as the SDK's backends for it do."""

    input_data_format: str
    output_data_format: str
    content_type: str


FORMATS: dict[str, JobFormat] = {
    "ionq": JobFormat("ionq.circuit.v1", "ionq.quantum-results.v1", "application/json"),
    "quantinuum": JobFormat(
        "honeywell.openqasm.v1", "honeywell.quantum-results.v1", "application/qasm"
    ),
    "rigetti": JobFormat("qir.v1", "microsoft.quantum-results.v2", "qir.v1"),
}


@dataclass(frozen=True)
class _Program:
    payload: bytes
    layout: dict[str, Any]
    input_params: dict[str, Any]


def azure_job_id(job_id: str) -> str:
    """The Azure job id of our job `job_id` (the same on every delivery)."""
    return str(uuid.uuid5(_JOB_NAMESPACE, job_id))


class AzureQuantum:
    """The Azure Quantum adapter (`SupplierAdapter`). Safe to share between threads.

    Its network methods raise `SupplierUnavailable` or `SupplierRejected`, as `supplier_error`
    sorts what the SDK raised.
    """

    supplier_id = "azure_quantum"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._workspace_lock = threading.Lock()
        self._workspace: Any = None

    def configured(self) -> bool:
        return self._settings.suppliers.azure_quantum.configured

    def check_credentials(self) -> str | None:
        """None when the workspace answers with the configured credentials (GET quotas)."""
        try:
            with _azure_calls("reading the workspace's quotas"):
                ws = self._connect()
                quotas = ws._get_quotas_client().list(
                    ws.subscription_id, ws.resource_group, ws.name, **_CALL_OPTIONS
                )
                next(iter(quotas), None)
        except ApiError as exc:
            return exc.detail
        return None

    def submit(self, request: SubmitRequest) -> str:
        """The Azure job of `request.client_token`: the existing one, or a new one. Raises
        `CircuitDoesNotFit` when the provider cannot run the circuit."""
        target = request.target
        fmt = _format(target)
        task_id = azure_job_id(request.client_token)
        program = _program(_provider(target), request.parsed, request.shots)
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
        from azure.quantum._client.models import BlobDetails
        from azure.quantum.job import JobDetails
        from azure.storage.blob import ContainerClient, ContentSettings

        with _azure_calls(f"submitting to {target.name}"):
            ws = self._connect()
            jobs = ws._get_jobs_client()
            scope = (ws.subscription_id, ws.resource_group, ws.name)
            try:
                jobs.get(*scope, task_id, **_CALL_OPTIONS)
                return task_id  # a redelivery: this job was submitted already
            except ResourceNotFoundError:
                pass
            container_uri = (
                ws._get_workspace_storage_client()
                .get_sas_uri(
                    *scope,
                    blob_details=BlobDetails(container_name=f"job-{task_id}"),
                    **_CALL_OPTIONS,
                )
                .sas_uri
            )
            container = ContainerClient.from_container_url(container_uri, **_CALL_OPTIONS)
            blob = container.get_blob_client(_INPUT_BLOB)
            blob.upload_blob(
                program.payload,
                overwrite=True,
                content_settings=ContentSettings(content_type=fmt.content_type),
            )
            details = JobDetails(
                name=f"qcos-{request.client_token}",
                provider_id=_provider(target),
                target=target.name,
                container_uri=container_uri,
                input_data_uri=blob.url.split("?", 1)[0],
                input_data_format=fmt.input_data_format,
                output_data_format=fmt.output_data_format,
                input_params=program.input_params,
                metadata={
                    _METADATA_JOB_ID: request.client_token,
                    _METADATA_LAYOUT: json.dumps(program.layout, separators=(",", ":")),
                },
            )
            try:
                jobs.create(*scope, task_id, details, **_CALL_OPTIONS)
            except ResourceExistsError:
                pass  # a concurrent delivery created it first
        return task_id

    def poll(self, target: Target, task_id: str) -> TaskState:
        """The job's state; its counts once it succeeded, its reason once it failed."""
        with _azure_calls(f"reading job {task_id} on {target.name}"):
            ws = self._connect()
            details = ws._get_jobs_client().get(
                ws.subscription_id, ws.resource_group, ws.name, task_id, **_CALL_OPTIONS
            )
            raw = str(getattr(details.status, "value", details.status) or "")
            state = map_status(STATUS_MAP, raw)
            counts = None
            if state is SupplierState.COMPLETED:
                counts = _counts(details, self._download(ws, details.output_data_uri))
        return TaskState(
            state=state,
            raw_status=raw,
            counts=counts,
            reason=_failure_reason(details) if state is SupplierState.FAILED else None,
            execution_time_ms=_ms_between(details.begin_execution_time, details.end_execution_time),
            queue_time_ms=_ms_between(details.creation_time, details.begin_execution_time),
        )

    def cancel(self, target: Target, task_id: str) -> None:
        """Ask Azure Quantum to cancel the job (it reports Cancelled once it has)."""
        from azure.core.exceptions import HttpResponseError

        with _azure_calls(f"cancelling job {task_id} on {target.name}"):
            ws = self._connect()
            try:
                ws._get_jobs_client().cancel(
                    ws.subscription_id, ws.resource_group, ws.name, task_id, **_CALL_OPTIONS
                )
            except HttpResponseError as exc:
                if exc.status_code != 204:  # the service answers a cancellation with 204
                    raise

    def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
        """`parsed` run locally as `target` would run it; IonQ refusals as in the cloud."""
        if _provider(target) == "ionq":
            to_ionq(parsed.circuit)
        return emulation.emulate_target(target, parsed, shots, limits=self._settings.limits)

    # -- the workspace --------------------------------------------------------------------------

    def _connect(self) -> Any:
        """The process's workspace client, made on first use."""
        with self._workspace_lock:
            if self._workspace is None:
                self._workspace = self._make_workspace()
            return self._workspace

    def _make_workspace(self) -> Any:
        from azure.quantum.workspace import Workspace

        config = self._settings.suppliers.azure_quantum
        if config.connection_string:
            try:
                return Workspace.from_connection_string(config.connection_string)
            except ValueError:  # its message may quote the key
                raise SupplierRejected(
                    "QCOS_AZURE_QUANTUM_CONNECTION_STRING is not a valid Azure Quantum "
                    "connection string"
                ) from None
        if not (config.resource_id and config.location):
            raise SupplierRejected("Azure Quantum is not configured")
        try:
            return Workspace(
                resource_id=config.resource_id,
                location=config.location,
                credential=managed_identity(config.client_id),
            )
        except ValueError as exc:
            raise SupplierRejected(
                sanitise(f"The Azure Quantum workspace settings are not valid: {exc}")
            ) from None

    def _download(self, ws: Any, blob_uri: str | None) -> bytes:
        """The blob at `blob_uri` (in the workspace's storage), through a fresh SAS."""
        from azure.quantum._client.models import BlobDetails
        from azure.storage.blob import BlobClient

        if not blob_uri:
            raise SupplierRejected("Azure Quantum reported the job succeeded without output")
        location = BlobClient.from_blob_url(blob_uri)
        sas_uri = (
            ws._get_workspace_storage_client()
            .get_sas_uri(
                ws.subscription_id,
                ws.resource_group,
                ws.name,
                blob_details=BlobDetails(
                    container_name=location.container_name, blob_name=location.blob_name
                ),
                **_CALL_OPTIONS,
            )
            .sas_uri
        )
        data: bytes = BlobClient.from_blob_url(sas_uri, **_CALL_OPTIONS).download_blob().readall()
        return data


def managed_identity(client_id: str | None) -> Any:
    """The credential of the function's managed identity: the user-assigned one `client_id`
    names, else whatever `DefaultAzureCredential` finds (the system-assigned one in Azure)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


# -- errors -------------------------------------------------------------------------------------


def supplier_error(exc: BaseException, action: str) -> ApiError | None:
    """`exc`, raised by the SDK while `action`, as `SupplierUnavailable` (it may pass: no
    connection, a timeout, 408, 429, 5xx) or `SupplierRejected` (it will not: 4xx, bad
    credentials), with a sanitised message; None for an exception that is not Azure's."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
    )

    if isinstance(exc, ClientAuthenticationError):
        status = getattr(exc, "status_code", None)
        code = f" (HTTP {status})" if status else ""
        return SupplierRejected(
            sanitise(f"Azure Quantum refused the credentials{code} {action}: {_first_line(exc)}")
        )
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = int(exc.status_code)
        text = f"Azure Quantum answered HTTP {status} {action}: {_first_line(exc)}"
        if transient_http_status(status):
            return SupplierUnavailable(sanitise(text))
        return SupplierRejected(sanitise(text))
    if isinstance(exc, AzureError | TimeoutError | ConnectionError):
        return SupplierUnavailable(
            sanitise(f"Azure Quantum could not be reached {action}: {_first_line(exc)}")
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    return one_line(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)


@contextmanager
def _azure_calls(action: str) -> Iterator[None]:
    """Raise what the SDK raises inside as `supplier_error` sorts it."""
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        translated = supplier_error(exc, action)
        if translated is None:
            raise
        # Not chained: the SDK's exception can carry a signed URL into a logged traceback.
        raise translated from None


# -- programs -----------------------------------------------------------------------------------


def _provider(target: Target) -> str:
    return (target.ref or target.provider).lower()


def _format(target: Target) -> JobFormat:
    found = FORMATS.get(_provider(target))
    if found is None:
        raise CircuitDoesNotFit(f"{target.name}: this gateway cannot submit to its provider")
    return found


def _program(provider: str, parsed: ParsedCircuit, shots: int) -> _Program:
    """The payload for `provider`, the layout `poll` reads results with, and the input
    parameters. Raises `CircuitDoesNotFit` when the provider cannot run the circuit."""
    if provider == "ionq":
        ionq = to_ionq(parsed.circuit)
        layout = _layout(ionq.circuit)
        layout["sources"] = sorted(ionq.sources.items())
        payload = json.dumps(ionq.body, separators=(",", ":")).encode()
        return _Program(payload, layout, {"shots": shots})
    circuit, _ = with_measurements(parsed.circuit)
    if provider == "quantinuum":
        from qiskit import qasm2

        try:
            qasm = qasm2.dumps(circuit)
        except qasm2.QASM2ExportError as exc:
            raise CircuitDoesNotFit(
                f"The circuit cannot be written as OpenQASM 2 for Quantinuum: {one_line(str(exc))}"
            ) from None
        return _Program(qasm.encode(), _layout(circuit), {"shots": shots})
    if provider == "rigetti":
        qir = _qir(circuit)
        params = {"shots": shots, "items": [{"entryPoint": _QIR_ENTRY_POINT, "arguments": []}]}
        return _Program(qir.encode(), _layout(circuit), params)
    raise CircuitDoesNotFit(f"This gateway cannot submit circuits to the provider {provider!r}")


def _qir(circuit: Any) -> str:
    """QIR (base profile) for Rigetti, written as azure.quantum.qiskit's QIR backends do."""
    try:
        sources = clbit_sources(circuit)
    except MidCircuitMeasurement as exc:
        raise CircuitDoesNotFit(
            f"Rigetti's QIR measures every qubit at the end of the circuit: {exc}"
        ) from None
    unmeasured = sorted(set(range(circuit.num_clbits)) - set(sources))
    if unmeasured:
        raise CircuitDoesNotFit(
            f"Rigetti's QIR records only measured classical bits; clbits {unmeasured[:10]} "
            "are never measured into"
        )
    from qdk import TargetProfile
    from qdk.qiskit import QSharpBackend
    from qiskit.transpiler import generate_preset_pass_manager

    manager = generate_preset_pass_manager(
        optimization_level=0, basis_gates=[*QIR_BASIS_GATES, "measure", "reset"]
    )
    try:
        transpiled = manager.run(circuit)
        backend = QSharpBackend(
            qiskit_pass_options={"supports_barrier": False},
            target_profile=TargetProfile.Base,
            skip_transpilation=True,
        )
        qir: str = backend.qir(transpiled)
    except Exception as exc:  # the compiler's refusal, as one line
        raise CircuitDoesNotFit(
            f"The circuit cannot be compiled to QIR for Rigetti: {_first_line(exc)}"
        ) from None
    return qir


def _layout(circuit: Any) -> dict[str, Any]:
    """What `poll` needs of `circuit` to write qiskit's keys: its qubit and clbit counts and its
    classical registers (name, clbit indices), in declaration order."""
    return {
        "qubits": int(circuit.num_qubits),
        "clbits": int(circuit.num_clbits),
        "registers": [
            [register.name, [circuit.find_bit(bit).index for bit in register]]
            for register in circuit.cregs
        ],
    }


def _skeleton(layout: Mapping[str, Any]) -> Any:
    """A circuit with `layout`'s registers (and, for IonQ, its final measurements): enough for
    `bitorder` to write keys as for the circuit that was sent."""
    from qiskit.circuit import ClassicalRegister, Clbit, QuantumCircuit, Qubit

    clbits = [Clbit() for _ in range(int(layout["clbits"]))]
    circuit = QuantumCircuit([Qubit() for _ in range(int(layout["qubits"]))], clbits)
    for name, bits in layout["registers"]:
        circuit.add_register(ClassicalRegister(name=str(name), bits=[clbits[i] for i in bits]))
    for clbit, qubit in layout.get("sources", ()):
        circuit.measure(int(qubit), int(clbit))
    return circuit


# -- results ------------------------------------------------------------------------------------


def _counts(details: Any, output: bytes) -> dict[str, int]:
    """The counts in a succeeded job's output, in qiskit's convention."""
    try:
        layout = json.loads((details.metadata or {})[_METADATA_LAYOUT])
        payload = json.loads(output)
        shots = int((details.input_params or {})["shots"])
        fmt = details.output_data_format
        skeleton = _skeleton(layout)
        if fmt == FORMATS["ionq"].output_data_format:
            return counts_from_histogram(payload["histogram"], shots, skeleton)
        if fmt == FORMATS["quantinuum"].output_data_format:
            return _counts_from_registers(payload, layout, skeleton)
        if fmt == FORMATS["rigetti"].output_data_format:
            return _counts_from_qir_results(payload, layout, skeleton)
        raise ValueError(f"unexpected output format {fmt!r}")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SupplierRejected(
            sanitise(f"Azure Quantum returned results this gateway cannot read: {exc!r}")
        ) from None


def _counts_from_registers(
    results: Mapping[str, Any], layout: Mapping[str, Any], skeleton: Any
) -> dict[str, int]:
    """Quantinuum's {register: [one string per shot, highest bit first]} as counts."""
    registers = [(str(name), bits) for name, bits in layout["registers"] if bits]
    columns = [results[name] for name, _ in registers]
    if len({len(column) for column in columns}) > 1:
        raise ValueError("the registers report different numbers of shots")
    counts: Counter[str] = Counter()
    for shot, times in Counter(zip(*columns, strict=True)).items():
        values = [0] * skeleton.num_clbits
        for (_, bits), text in zip(registers, shot, strict=True):
            _assign(values, bits, [int(c) for c in str(text)])
        counts[qiskit_key(values, skeleton)] += times
    return dict(counts)


def _counts_from_qir_results(
    payload: Mapping[str, Any], layout: Mapping[str, Any], skeleton: Any
) -> dict[str, int]:
    """A `microsoft.quantum-results.v2` histogram (one circuit) as counts."""
    (result,) = payload["Results"]
    registers = layout["registers"]
    counts: Counter[str] = Counter()
    for entry in result["Histogram"]:
        outcome = entry["Outcome"]
        if isinstance(outcome, Mapping):  # a tuple: {"Item1": [...], "Item2": [...]}
            recorded = [outcome[f"Item{i + 1}"] for i in range(len(outcome))]
        else:
            recorded = [outcome]
        if len(recorded) != len(registers):
            raise ValueError(f"{len(recorded)} registers recorded, {len(registers)} declared")
        if any(bit not in (0, 1) for bits in recorded for bit in bits):
            continue  # a lost qubit
        values = [0] * skeleton.num_clbits
        for (_, bits), reported in zip(reversed(registers), recorded, strict=True):
            _assign(values, bits, [int(bit) for bit in reported])
        counts[qiskit_key(values, skeleton)] += int(entry["Count"])
    return dict(counts)


def _assign(values: list[int], clbits: list[int], highest_first: list[int]) -> None:
    """Set `values[clbits[j]]` from a register's bits written highest index first."""
    if len(highest_first) != len(clbits):
        raise ValueError(f"a register of {len(clbits)} bits reported {len(highest_first)}")
    for j, clbit in enumerate(clbits):
        bit = highest_first[len(clbits) - 1 - j]
        if bit not in (0, 1):
            raise ValueError(f"bit value {bit!r}")
        values[clbit] = bit


def _failure_reason(details: Any) -> str:
    error = details.error_data
    if error is None:
        return "Azure Quantum reported the job failed without a reason"
    code = getattr(error, "code", None) or "Error"
    message = getattr(error, "message", None) or ""
    return sanitise(f"{code}: {message}")


def _ms_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds() * 1000.0, 0.0)
