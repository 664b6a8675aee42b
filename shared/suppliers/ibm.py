"""IBM Quantum: SamplerV2 jobs on IBM backends through qiskit-ibm-runtime, and their emulation.

Cloud (`QCOS_IBM_TOKEN` set): one `QiskitRuntimeService` per adapter, built on first use and
shared by every thread. `submit` first asks IBM for a job tagged with the job's client token, so a
redelivered queue message finds the job it already created; otherwise it transpiles the circuit
to the backend (preset pass manager, optimisation level 1; `measure_all` first when the circuit
measures nothing) and runs it with `SamplerV2`, tagged with the client token. `poll` reads the job's
status through `STATUS_MAP`; once done, the counts are the first pub's `BitArray`s (one per
classical register, in the circuit's declaration order) joined shot by shot, last register
leftmost, as `qiskit.result.Result.get_counts()` writes them.

Emulated (no token): the `qiskit_ibm_runtime.fake_provider` backend the catalog names
(`calibration: "fake_brisbane"`; `shared.suppliers.devices.fake_backend`, built once per
process) lends its `Target` (a real calibration snapshot) to `emulation.emulate_target`, which
transpiles the circuit to it and runs it on the noise model of the qubits it uses.

Errors are sorted in one place, `supplier_error`. qiskit-ibm-runtime wraps `requests` errors,
often more than once and sometimes dropping the status code on the way (a 503 arrives as a
`RequestsApiError` with status -1; `service.job` re-raises a 429 as a bare `IBMRuntimeError`),
so it reads the whole exception chain: transport errors, timeouts, 408, 429 and 5xx are
`SupplierUnavailable` (the queue retries); the rest, 401/403 and 400/404 refusals included, is
`SupplierRejected` with a sanitised message.

qiskit_ibm_runtime is imported inside the functions only (0.8 s): importing this module does
not import it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any

from shared.circuits import ParsedCircuit
from shared.circuits.bitorder import with_measurements
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

logger = logging.getLogger(__name__)

# Every status `RuntimeJobV2.status()` can return in qiskit-ibm-runtime 0.51.0 (its `JobStatus`
# plus the REST API's own words, which it passes through upper-cased when it has no mapping for
# them), and the names of qiskit's older `JobStatus` enum. Anything else is UNKNOWN.
STATUS_MAP: dict[str, SupplierState] = {
    "INITIALIZING": SupplierState.QUEUED,
    "QUEUED": SupplierState.QUEUED,
    "VALIDATING": SupplierState.QUEUED,
    "RUNNING": SupplierState.RUNNING,
    "DONE": SupplierState.COMPLETED,
    "COMPLETED": SupplierState.COMPLETED,
    "ERROR": SupplierState.FAILED,
    "FAILED": SupplierState.FAILED,
    # IBM stopped it for running past its maximum execution time: a failure, not our cancel.
    "CANCELLED - RAN TOO LONG": SupplierState.FAILED,
    "CANCELLED": SupplierState.CANCELLED,
}

# requests' texts for an HTTP error ("429 Client Error: Too Many Requests for url: ...") and for
# retries that ran out ("too many 503 error responses"), which the SDK keeps in its messages
# when it drops the status code.
_HTTP_IN_TEXT = re.compile(r"\b([1-5]\d\d) (?:Client|Server) Error\b|too many ([1-5]\d\d) error")
# What the SDK says instead of a 503 (its "maintenance mode" message, status -1).
_MAINTENANCE = "maintenance mode"
_URL_IN_TEXT = re.compile(r"\s*(?:for |with )?url: \S+")
_TRACEBACK = "Traceback (most recent call last)"
_CREDENTIAL_HEADER = re.compile(r"(?i)\b(bearer|basic|apikey)\s+[A-Za-z0-9._~+/=-]+")


class IBMQuantum:
    """The IBM Quantum adapter (`SupplierAdapter`). Safe to share between threads."""

    supplier_id = "ibm_quantum"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ibm = settings.suppliers.ibm
        self._secrets = tuple(secret for secret in (self._ibm.token,) if secret)
        self._service: Any = None
        self._service_lock = threading.Lock()

    def configured(self) -> bool:
        return self._ibm.configured

    def check_credentials(self) -> str | None:
        """None when IBM accepts the token and instance (builds the service, reads the
        instance's usage); else the sanitised reason."""
        try:
            with _translated("check the credentials", self._secrets):
                self._get_service().usage()
        except ApiError as exc:
            return exc.detail
        return None

    def submit(self, request: SubmitRequest) -> str:
        """The IBM job id of `request.client_token`'s job: the one already tagged with it, or a new
        SamplerV2 job. Raises `CircuitDoesNotFit`, `SupplierUnavailable`, `SupplierRejected`."""
        name = request.target.name
        with _translated(f"submit the job to {name}", self._secrets):
            service = self._get_service()
            existing = service.jobs(job_tags=[request.client_token], backend_name=name, limit=1)
            if existing:
                token = request.client_token
                logger.info("token %s already has IBM job %s", token, existing[0].job_id())
                return str(existing[0].job_id())
            backend = service.backend(name)
            circuit = _isa_circuit(backend, request.parsed, name)
            from qiskit_ibm_runtime import SamplerV2

            sampler = SamplerV2(mode=backend)
            sampler.options.environment.job_tags = [request.client_token]
            job = sampler.run([circuit], shots=request.shots)
            return str(job.job_id())

    def poll(self, target: Target, task_id: str) -> TaskState:
        """The job's state; its counts once DONE, its reason once failed."""
        with _translated(f"read job {task_id}", self._secrets):
            job = self._get_service().job(task_id)
            raw = _status_name(job.status())
            state = map_status(STATUS_MAP, raw)
            if state is SupplierState.COMPLETED:
                counts = sampler_counts(job.result())
                execution_ms, queue_ms = _timings(job)
                return TaskState(
                    state,
                    raw,
                    counts=counts,
                    execution_time_ms=execution_ms,
                    queue_time_ms=queue_ms,
                )
            if state is SupplierState.FAILED:
                return TaskState(
                    state, raw, reason=job_reason(job.error_message(), raw, self._secrets)
                )
            return TaskState(state, raw)

    def cancel(self, target: Target, task_id: str) -> None:
        """Ask IBM to cancel the job; nothing happens when it has already finished."""
        from qiskit_ibm_runtime.exceptions import RuntimeInvalidStateError

        with _translated(f"cancel job {task_id}", self._secrets):
            job = self._get_service().job(task_id)
            try:
                job.cancel()
            except RuntimeInvalidStateError:  # 409: already in a final state
                logger.info("IBM job %s had already finished; nothing to cancel", task_id)

    def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
        """`parsed` on the noise of the fake backend of `target.calibration`, restricted to the
        qubits the circuit uses (`emulation.emulate_target`)."""
        return emulation.emulate_target(target, parsed, shots, limits=self._settings.limits)

    def _get_service(self) -> Any:
        """The adapter's `QiskitRuntimeService` (IAM, instance lookup and backend listing on
        first use only; a failed build is tried again on the next call)."""
        with self._service_lock:
            if self._service is None:
                if not self._ibm.token:
                    raise SupplierRejected("IBM Quantum is not configured (QCOS_IBM_TOKEN)")
                from qiskit_ibm_runtime import QiskitRuntimeService

                options: dict[str, Any] = {
                    "channel": self._ibm.channel,
                    "token": self._ibm.token,
                    "instance": self._ibm.instance,
                }
                if self._ibm.url:
                    options["url"] = self._ibm.url
                self._service = QiskitRuntimeService(**options)
            return self._service


def _isa_circuit(backend: Any, parsed: ParsedCircuit, name: str) -> Any:
    """`parsed` (measured everywhere when it measures nothing) transpiled to `backend`."""
    target = backend.target  # reads the backend's properties: network errors stay network errors
    if parsed.num_qubits > target.num_qubits:
        raise CircuitDoesNotFit(
            f"The circuit has {parsed.num_qubits} qubits; {name} has {target.num_qubits}"
        )
    circuit, _ = with_measurements(parsed.circuit)
    from qiskit.transpiler import generate_preset_pass_manager

    pass_manager = generate_preset_pass_manager(optimization_level=1, backend=backend)
    try:
        return pass_manager.run(circuit)
    except Exception as exc:  # a gate with no route to the backend's basis
        raise CircuitDoesNotFit(
            f"The circuit cannot be mapped to {name}: {one_line(str(exc), 200)}"
        ) from exc


def sampler_counts(result: Any) -> dict[str, int]:
    """Counts in qiskit's convention from a SamplerV2 result of one circuit.

    The first pub's data holds one `BitArray` per classical register, in the order the circuit
    declares them; each shot's key is the registers' bitstrings (highest bit first), last
    register leftmost, separated by a space: what `qiskit.result.Result.get_counts()` gives.
    """
    data = result[0].data
    registers = [data[name] for name in reversed(list(data.keys()))]
    columns = [register.get_bitstrings() for register in registers if register.num_bits]
    if not columns:
        return {}
    return dict(Counter(" ".join(bits) for bits in zip(*columns, strict=True)))


def job_reason(message: str | None, raw_status: str, secrets: Iterable[str] = ()) -> str:
    """A failed job's reason, readable: IBM's message on one line, without a traceback (its last
    line, the error itself, stays), sanitised."""
    return readable(message or "", secrets) or f"IBM Quantum reports the job {raw_status}"


def readable(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` safe to show: a traceback cut down to its last line (the error), `secrets` and
    credentials in headers masked, then `sanitise`d (one bounded line)."""
    text = text.strip()
    start = text.find(_TRACEBACK)
    if start >= 0:
        lines = [line.strip() for line in text[start:].splitlines() if line.strip()]
        text = f"{text[:start].strip()} {lines[-1] if len(lines) > 1 else ''}".strip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    # `sanitise` keeps what follows "Bearer " (and knows no "apikey <key>" header, which the
    # SDK sends when IAM fails): mask those here.
    text = _CREDENTIAL_HEADER.sub(lambda m: f"{m.group(1)} ***", text)
    return sanitise(text)


def _status_name(raw: object) -> str:
    """`RuntimeJobV2.status()` as a string (qiskit's older `JobStatus` enum by its name)."""
    return raw.name if isinstance(raw, Enum) else str(raw)


def _timings(job: Any) -> tuple[float | None, float | None]:
    """(execution ms, queue ms) from the job's metrics, when IBM gives them; optional, so a
    metrics call that fails costs the figures only."""
    try:
        metrics = job.metrics()
    except Exception as exc:  # the counts are what matters; the figures may be missing
        logger.info("no metrics for IBM job %s: %s", job.job_id(), sanitise(exc))
        return None, None
    stamps = _mapping(_mapping(metrics).get("timestamps"))
    created, running, finished = (
        _instant(stamps.get(key)) for key in ("created", "running", "finished")
    )
    quantum_seconds = _mapping(_mapping(metrics).get("usage")).get("quantum_seconds")
    execution_ms: float | None = None
    if isinstance(quantum_seconds, int | float):
        execution_ms = float(quantum_seconds) * 1000.0
    elif running and finished:
        execution_ms = (finished - running).total_seconds() * 1000.0
    queue_ms = (running - created).total_seconds() * 1000.0 if created and running else None
    return execution_ms, queue_ms


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@contextmanager
def _translated(action: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Let the gateway's own errors through; turn anything else into `supplier_error`'s."""
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        raise supplier_error(exc, action, secrets) from exc


def supplier_error(
    exc: BaseException, action: str, secrets: Iterable[str] = ()
) -> SupplierUnavailable | SupplierRejected:
    """The one place IBM errors are sorted: what may pass (transport errors, timeouts, 408,
    425, 429, 5xx; a backend IBM did not list) is `SupplierUnavailable`, the rest
    `SupplierRejected`. The message names `action` and what IBM said, `readable` (`secrets`,
    such as the API key, masked)."""
    from qiskit.providers.exceptions import QiskitBackendNotFoundError

    status = _http_status(exc)
    said = _message(exc)
    http = f" (HTTP {status})" if status else ""
    if _is_transport_error(exc) or transient_http_status(status):
        return SupplierUnavailable(
            readable(f"IBM Quantum could not {action}{http}: {said}", secrets)
        )
    if status is None and isinstance(exc, QiskitBackendNotFoundError):
        # The SDK answers "no backend matches" when listing the backends failed too (it logs
        # and drops that error), and the catalog lists this backend: worth another try.
        return SupplierUnavailable(readable(f"IBM Quantum could not {action}: {said}", secrets))
    if status in (401, 403):
        return SupplierRejected(
            readable(f"IBM Quantum refused the credentials{http}: {said}", secrets)
        )
    return SupplierRejected(readable(f"IBM Quantum could not {action}{http}: {said}", secrets))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status behind `exc`, wherever in its chain the SDK left it."""
    from qiskit_ibm_runtime.exceptions import IBMNotAuthorizedError

    for link in _chain(exc):
        if isinstance(link, IBMNotAuthorizedError):
            return 401
        for code in (
            getattr(link, "status_code", None),  # RequestsApiError, ibm_cloud_sdk_core's
            getattr(getattr(link, "response", None), "status_code", None),  # requests'
        ):
            if isinstance(code, int) and 100 <= code <= 599:
                return code
        text = str(link)
        found = _HTTP_IN_TEXT.search(text)
        if found:
            return int(found.group(1) or found.group(2))
        if _MAINTENANCE in text:
            return 503
    return None


def _is_transport_error(exc: BaseException) -> bool:
    """A connection refused or reset, a timeout, retries exhausted: the network, not IBM."""
    import requests
    import urllib3

    transport = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.RetryError,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
        ConnectionError,
        TimeoutError,
    )
    return any(isinstance(link, transport) for link in _chain(exc))


def _message(exc: BaseException) -> str:
    """What IBM said (the error body of the HTTP response behind `exc`), else the outermost
    message in `exc`'s chain without its URLs, else the name of `exc`'s type."""
    for link in _chain(exc):
        said = _server_said(link)
        if said:
            return said
    for link in _chain(exc):
        message = getattr(link, "message", None)  # QiskitError's str() is its repr
        text = one_line(message if isinstance(message, str) else str(link), 400)
        text = _URL_IN_TEXT.sub("", text).strip()
        if text and text != "None":
            return text
    return type(exc).__name__


def _server_said(link: BaseException) -> str | None:
    """The messages in the error body of `link`'s HTTP response (requests' `response`,
    ibm_cloud_sdk_core's `http_response`), or its reason phrase; None without a response."""
    response = getattr(link, "response", None)
    if response is None:
        response = getattr(link, "http_response", None)
    if response is None:
        return None
    try:
        body = response.json()
    except Exception:  # not JSON: the reason phrase says enough
        body = None
    messages: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):  # IBM Quantum: {"errors": [{"code", "message"}]}
            messages = [
                str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")
            ]
        for key in ("errorMessage", "message", "error"):  # IAM: errorMessage
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if not messages and isinstance(value, str) and value:
                messages = [value]
    text = "; ".join(messages) or str(getattr(response, "reason", "") or "")
    return one_line(text, 400) or None
