"""AWS Braket: the real path through amazon-braket-sdk and boto3, and its local emulation.

The program. Every gate-model target gets the OpenQASM 3 program of `shared.circuits.to_braket`:
one bit register whose bit i is the circuit's clbit i, gates every Braket device accepts, final
measurements only, and a comment listing the circuit's classical registers.

Counts come back through the program Braket echoes. `poll` has only the task's ARN, so nothing
is stored at submit: results.json carries the program that ran (`additionalMetadata.action`),
and its measure statements and register comment rebuild the circuit's clbits for
`bitorder.counts_from_qubit_outcomes` with Braket's `measuredQubits`
(`to_braket.counts_from_results`). The emulation reads its counts the same way, from the program
the local simulator echoes.

The real path (`configured()`: an access key pair and the results bucket):
- One `AwsSession` per region (targets live in us-east-1, us-west-1 and eu-north-1), made on
  first use under a lock from a boto3 session with the settings' keys, and reused: boto3
  clients are thread-safe, boto3 sessions are not, so the S3 client is made with the session.
  `aws_session(region)` returns it; tests attach botocore's `Stubber` to its `braket_client`.
- `submit` calls `AwsSession.create_quantum_task` with `clientToken=client_token`: the SDK's
  `AwsQuantumTask.create` drops a client token, botocore would fill in a random one, and with
  ours Braket answers a redelivered message with the task it already created. Results go to
  `s3://{s3_bucket}/{s3_prefix}/{client_token}/`.
- `poll` reads the task (`GetQuantumTask`, through the SDK, which retries throttling) and maps
  its status through `STATUS_MAP`; once COMPLETED it reads `{outputS3Directory}/results.json`
  from `outputS3Bucket`; once FAILED it gives `failureReason`, sanitised.
- `cancel` sends `CancelQuantumTask` with a client token derived from the ARN (a retried
  cancel is the same request); a task already finished (ConflictException) needs nothing.

Errors are sorted in one place, `sort_error`: throttling, quotas, 5xx, timeouts and refused
connections are `SupplierUnavailable` (the queue retries); everything else AWS answers
(validation, access denied, unknown task, device offline or retired) is `SupplierRejected`.
Messages go through `sanitise`.

Emulation: sv1 and dm1 run the same program on the SDK's `LocalSimulator` (`braket_sv`, 26 qubits;
`braket_dm`, 13), which proves the translation; every other gate-model target goes to
`emulation.emulate_target` (tn1 ideal on Aer, QPUs on their device data files). QuEra Aquila is
analog: it takes no circuits.

braket, boto3 and botocore are imported inside the methods only: importing this module costs
nothing (a test checks it).
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared.circuits import ParsedCircuit
from shared.circuits.to_braket import counts_from_outcomes, counts_from_results, to_braket
from shared.config import Settings
from shared.errors import CircuitDoesNotFit
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

if TYPE_CHECKING:
    from braket.aws import AwsSession

# Every QuantumTaskStatus of the Braket API (botocore's service model; a test walks them).
STATUS_MAP: dict[str, SupplierState] = {
    "CREATED": SupplierState.QUEUED,
    "QUEUED": SupplierState.QUEUED,
    "RUNNING": SupplierState.RUNNING,
    "COMPLETED": SupplierState.COMPLETED,
    "FAILED": SupplierState.FAILED,
    "CANCELLING": SupplierState.RUNNING,  # not over yet: keep polling until CANCELLED
    "CANCELLED": SupplierState.CANCELLED,
}
# Braket's and S3's error codes for what may pass: the request is retried later.
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceQuotaExceededException",  # e.g. too many tasks queued: some will finish
        "InternalServiceException",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
    }
)
RESULTS_FILE = "results.json"
# Targets whose emulation is the SDK's local simulator running the very program sent.
LOCAL_SIMULATORS = {"sv1": "braket_sv", "dm1": "braket_dm"}
_THROTTLED_RETRY_AFTER = 30


def sort_error(exc: BaseException, action: str) -> SupplierUnavailable | SupplierRejected | None:
    """The error to raise for `exc`, raised while AWS Braket was asked to `action` ("create the
    task"): `SupplierUnavailable` for what may pass, `SupplierRejected` for what will not, both
    with a sanitised message; None for an exception that did not come from AWS (a bug)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        HTTPClientError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "Unknown")
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        detail = sanitise(f"AWS Braket could not {action}: {code}: {error.get('Message') or ''}")
        if code in TRANSIENT_CODES or transient_http_status(status):
            throttled = "Throttl" in code or "Quota" in code or status == 429
            return SupplierUnavailable(
                detail, retry_after=_THROTTLED_RETRY_AFTER if throttled else 5
            )
        return SupplierRejected(detail)
    # Connections refused or closed, and connect or read timeouts.
    if isinstance(exc, BotoConnectionError | HTTPClientError | TimeoutError | ConnectionError):
        return SupplierUnavailable(
            sanitise(f"AWS Braket could not be reached to {action}: {type(exc).__name__}: {exc}")
        )
    if isinstance(exc, BotoCoreError):  # missing credentials, a parameter refused, ...
        return SupplierRejected(sanitise(f"AWS Braket could not {action}: {exc}"))
    return None


@contextmanager
def _calling(action: str) -> Iterator[None]:
    """Sort what AWS raises inside the block (`sort_error`); let anything else through."""
    try:
        yield
    except Exception as exc:
        error = sort_error(exc, action)
        if error is None:
            raise
        raise error from exc


class Braket:
    """The AWS Braket adapter (`SupplierAdapter`). Safe to share between threads."""

    supplier_id = "braket"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._config = settings.suppliers.braket
        self._sessions: dict[str, AwsSession] = {}
        self._sessions_lock = threading.Lock()
        self._simulators: dict[str, Any] = {}
        self._simulators_lock = threading.Lock()

    def configured(self) -> bool:
        return self._config.configured

    # --- the real path -------------------------------------------------------------------

    def aws_session(self, region: str = "") -> AwsSession:
        """This adapter's one `AwsSession` for `region` (the settings' region when empty)."""
        region = region or self._config.region
        with self._sessions_lock:
            session = self._sessions.get(region)
            if session is None:
                session = self._sessions[region] = self._new_session(region)
            return session

    def _new_session(self, region: str) -> AwsSession:
        import boto3
        from botocore.config import Config
        from braket.aws import AwsSession

        boto_session = boto3.Session(
            aws_access_key_id=self._config.access_key_id,
            aws_secret_access_key=self._config.secret_access_key,
            aws_session_token=self._config.session_token,
            region_name=region,
        )
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
        )
        session = AwsSession(
            boto_session=boto_session, config=config, default_bucket=self._config.bucket_for(region)
        )
        _ = session.s3_client  # made now, under the lock: a boto3 session is not thread-safe
        return session

    def check_credentials(self) -> str | None:
        if not self.configured():
            return "AWS Braket is not configured (access key id, secret key and S3 bucket)"
        session = self.aws_session()
        try:
            with _calling("list devices"):
                session.braket_client.search_devices(filters=[], maxResults=1)
            with _calling("reach the results bucket"):
                session.s3_client.head_bucket(Bucket=self._config.bucket_for(self._config.region))
        except (SupplierUnavailable, SupplierRejected) as exc:
            return exc.detail
        return None

    def submit(self, request: SubmitRequest) -> str:
        """Create the task for `request.client_token` (its client token), or find the one that id
        already created; its ARN."""
        target = request.target
        _check_gate_model(target)
        bucket = self._config.bucket_for(target.region)
        if not self.configured() or not bucket:
            raise SupplierRejected("AWS Braket is not configured (access keys and S3 bucket)")
        from braket.ir.openqasm import Program

        program = to_braket(request.parsed)
        session = self.aws_session(target.region)
        with _calling("create the task"):
            arn = session.create_quantum_task(
                clientToken=request.client_token,
                deviceArn=target.ref,
                shots=request.shots,
                outputS3Bucket=bucket,
                outputS3KeyPrefix=self._key_prefix(request.client_token),
                action=Program(source=program.source).json(),
            )
        return str(arn)

    def poll(self, target: Target, task_id: str) -> TaskState:
        session = self.aws_session(target.region)
        with _calling("read the task"):
            task = session.get_quantum_task(task_id)
        raw = str(task.get("status") or "")
        state = map_status(STATUS_MAP, raw)
        if state is SupplierState.FAILED:
            reason = task.get("failureReason") or "AWS Braket failed the task without a reason"
            return TaskState(state, raw, reason=sanitise(reason))
        if state is not SupplierState.COMPLETED:
            return TaskState(state, raw)
        key = f"{task['outputS3Directory']}/{RESULTS_FILE}"
        with _calling("read the task's results"):
            body = session.s3_client.get_object(Bucket=task["outputS3Bucket"], Key=key)
            data = body["Body"].read()
        counts, execution_ms = _read_results(data, task_id)
        return TaskState(state, raw, counts=counts, execution_time_ms=execution_ms)

    def cancel(self, target: Target, task_id: str) -> None:
        """Ask Braket to stop the task; nothing to do when it has already finished."""
        from botocore.exceptions import ClientError

        session = self.aws_session(target.region)
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, task_id))
        with _calling("cancel the task"):
            try:
                session.braket_client.cancel_quantum_task(quantumTaskArn=task_id, clientToken=token)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConflictException":
                    raise

    def _key_prefix(self, job_id: str) -> str:
        prefix = self._config.s3_prefix.strip("/")
        return f"{prefix}/{job_id}" if prefix else job_id

    # --- emulation -----------------------------------------------------------------------

    def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
        _check_gate_model(target)
        backend = LOCAL_SIMULATORS.get(target.name)
        if backend is None:
            return emulation.emulate_target(target, parsed, shots, limits=self._settings.limits)
        return self._run_locally(backend, target, parsed, shots)

    def _run_locally(
        self, backend: str, target: Target, parsed: ParsedCircuit, shots: int
    ) -> EmulatedRun:
        simulator = self._local_simulator(backend)
        limit = int(simulator.properties.paradigm.qubitCount)
        if parsed.num_qubits > limit:
            raise CircuitDoesNotFit(
                f"The emulation of braket backend {target.name} runs on the SDK's local "
                f"simulator {backend}, which takes at most {limit} qubits; the circuit has "
                f"{parsed.num_qubits} (the cloud device takes {target.num_qubits})"
            )
        from braket.ir.openqasm import Program

        started = time.perf_counter()
        program = to_braket(parsed)
        result = simulator.run(Program(source=program.source), shots=shots).result()
        counts = counts_from_outcomes(
            dict(result.measurement_counts),
            list(result.measured_qubits),
            result.additional_metadata.action.source,  # the program, as Braket echoes it
        )
        return EmulatedRun(
            counts=counts,
            execution_time_ms=(time.perf_counter() - started) * 1000.0,
            method=f"braket LocalSimulator {backend}, ideal, running the program sent to "
            f"{target.name}",
            details={"local_simulator": backend, "measured_all": program.measured_all},
        )

    def _local_simulator(self, backend: str) -> Any:
        """The one `LocalSimulator` of `backend` (a simulator keeps no state between runs)."""
        with self._simulators_lock:
            simulator = self._simulators.get(backend)
            if simulator is None:
                from braket.devices import LocalSimulator

                # braket_dm warns on every noiseless circuit; emulating dm1 ideally is intended.
                warnings.filterwarnings(
                    "ignore", message="You are running a noise-free circuit", category=UserWarning
                )
                simulator = self._simulators[backend] = LocalSimulator(backend)
            return simulator


def _check_gate_model(target: Target) -> None:
    if not target.gate_model:
        raise CircuitDoesNotFit(
            f"braket backend {target.name} is an analog device, not gate-model: it runs no "
            "circuits",
            error_code="NOT_GATE_MODEL",
        )


def _read_results(data: bytes, task_id: str) -> tuple[dict[str, int], float | None]:
    """(counts, execution ms when the simulator reports it) of a results.json;
    `SupplierRejected` when it cannot be read."""
    import json

    try:
        results = json.loads(data)
        counts = counts_from_results(results)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SupplierRejected(
            sanitise(f"The results of AWS Braket task {task_id} could not be read: {exc}")
        ) from exc
    metadata = (results.get("additionalMetadata") or {}).get("simulatorMetadata") or {}
    duration = metadata.get("executionDuration")
    return counts, float(duration) if isinstance(duration, int | float) else None
