"""`shared.suppliers.azure_quantum`, cloud path: the real azure-quantum SDK against an in-memory
Azure Quantum workspace (data plane and its storage account) behind `responses`.

The workspace comes from a connection string, so there is no ARM and no AAD: every request goes
to `https://{location}.quantum.azure.com/...` (with the `x-ms-quantum-api-key` header) or to the
blob storage the SAS URLs name.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from requests import PreparedRequest

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import AzureQuantumSettings, Settings, SupplierSettings
from shared.errors import CircuitDoesNotFit
from shared.suppliers.azure_quantum import AzureQuantum, azure_job_id
from shared.suppliers.base import (
    SubmitRequest,
    SupplierRejected,
    SupplierState,
    SupplierUnavailable,
    Target,
)
from shared.suppliers.catalog import supplier
from tests.circuits import BELL

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000a1"
API_KEY = "qcos-test-api-key-0123456789"
LOCATION = "westeurope"
WORKSPACE = (
    f"https://{LOCATION}.quantum.azure.com/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-qcos"
    "/providers/Microsoft.Quantum/workspaces/ws-qcos"
)
STORE = "https://qcosfakestore.blob.core.windows.net"
SIGNATURE = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
SAS = f"sv=2024-05-04&se=2099-01-01T00%3A00%3A00Z&sp=rcw&sig={SIGNATURE}"
CONNECTION_STRING = (
    f"SubscriptionId={SUBSCRIPTION};ResourceGroupName=rg-qcos;WorkspaceName=ws-qcos;"
    f"ApiKey={API_KEY};QuantumEndpoint=https://{LOCATION}.quantum.azure.com/;"
)

V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
# Qubits 0 and 2 set; qiskit's key for that outcome is '1 01' (register b, then a[1] a[0]).
ASYMMETRIC = V2 + (
    "qreg q[3];\ncreg a[2];\ncreg b[1];\nx q[0];\nx q[2];\n"
    "measure q[2] -> a[0];\nmeasure q[1] -> a[1];\nmeasure q[0] -> b[0];\n"
)


def parsed(qasm: str) -> ParsedCircuit:
    return parse_circuit(qasm, CircuitLimits(262_144, 64, 1024, 1_000_000, 100_000))


def target(name: str) -> Target:
    return supplier("azure_quantum").target(name)


@dataclass
class FakeWorkspace:
    """An Azure Quantum workspace in memory: its jobs, its storage, and the requests it saw.

    Jobs are created as Waiting; a test moves them on with `set_status` and `succeed`.
    `errors` queues answers (status, body, headers) for the next requests to a path suffix
    (`jobs/<id>`, `storage/sasUri`, `quotas`...), served before the normal answer.
    """

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[tuple[str, str], tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    job_puts: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    errors: dict[tuple[str, str], list[tuple[int, dict[str, Any], dict[str, str]]]] = field(
        default_factory=dict
    )
    seen: list[PreparedRequest] = field(default_factory=list)

    def install(self, mock: responses.RequestsMock) -> None:
        ws = re.escape(WORKSPACE)
        store = re.escape(STORE)
        routes = [
            ("POST", rf"{ws}/storage/sasUri\?.*", self._sas),
            ("PUT", rf"{ws}/jobs/[^/?:]+\?.*", self._put_job),
            ("GET", rf"{ws}/jobs/[^/?:]+\?.*", self._get_job),
            ("POST", rf"{ws}/jobs/[^/?:]+:cancel\?.*", self._cancel),
            ("GET", rf"{ws}/quotas\?.*", self._quotas),
            ("PUT", rf"{store}/[^/?]+/[^/?]+\?.*", self._put_blob),
            ("GET", rf"{store}/[^/?]+/[^/?]+\?.*", self._get_blob),
        ]
        for method, pattern, handler in routes:
            mock.add_callback(method, re.compile(pattern), self._recorded(method, handler))

    def fail_next(
        self, method: str, suffix: str, status: int, error: dict[str, Any], **headers: str
    ) -> None:
        self.errors.setdefault((method, suffix), []).append((status, {"error": error}, headers))

    def set_status(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id] |= {"status": status, **fields}

    def succeed(self, job_id: str, output: bytes) -> None:
        container = f"job-{job_id}"
        self.blobs[(container, "rawOutputData")] = (output, {})
        self.set_status(
            job_id,
            "Succeeded",
            outputDataUri=f"{STORE}/{container}/rawOutputData",
            beginExecutionTime="2026-01-01T00:00:02Z",
            endExecutionTime="2026-01-01T00:00:02.5Z",
        )

    def input_blob(self, job_id: str) -> tuple[bytes, dict[str, str]]:
        return self.blobs[(f"job-{job_id}", "inputData")]

    # -- handlers ------------------------------------------------------------------------------

    def _recorded(self, method: str, handler: Any) -> Any:
        def answer(request: PreparedRequest) -> tuple[int, dict[str, str], str | bytes]:
            self.seen.append(request)
            path = urlsplit(str(request.url)).path
            for (err_method, suffix), queued in self.errors.items():
                if err_method == method and path.endswith(suffix) and queued:
                    status, body, headers = queued.pop(0)
                    return status, {"Content-Type": "application/json", **headers}, json.dumps(body)
            result: tuple[int, dict[str, str], str | bytes] = handler(request)
            return result

        return answer

    @staticmethod
    def _json(status: int, body: Any) -> tuple[int, dict[str, str], str]:
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    @staticmethod
    def _job_id(request: PreparedRequest) -> str:
        return urlsplit(str(request.url)).path.rsplit("/", 1)[1].split(":")[0]

    def _sas(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        url = f"{STORE}/{body['containerName']}"
        if body.get("blobName"):
            url += f"/{body['blobName']}"
        return self._json(200, {"sasUri": f"{url}?{SAS}"})

    def _put_job(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        job_id = self._job_id(request)
        body = json.loads(request.body or b"{}")
        self.job_puts.append(body)
        if job_id in self.jobs:
            return self._json(409, {"error": {"code": "Conflict", "message": "job exists"}})
        self.jobs[job_id] = body | {
            "id": job_id,
            "status": "Waiting",
            "creationTime": "2026-01-01T00:00:00Z",
        }
        return self._json(201, self.jobs[job_id])

    def _get_job(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        job = self.jobs.get(self._job_id(request))
        if job is None:
            return self._json(404, {"error": {"code": "JobNotFound", "message": "no such job"}})
        return self._json(200, job)

    def _cancel(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        job_id = self._job_id(request)
        self.cancels.append(job_id)
        self.set_status(job_id, "CancellationRequested")
        return 204, {}, ""

    def _quotas(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        return self._json(200, {"value": []})

    def _put_blob(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        container, blob = urlsplit(str(request.url)).path.strip("/").split("/", 1)
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        self.blobs[(container, blob)] = (body, dict(request.headers))
        return 201, {"ETag": '"0x1"', "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT"}, ""

    def _get_blob(self, request: PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        container, blob = urlsplit(str(request.url)).path.strip("/").split("/", 1)
        data, _ = self.blobs[(container, blob)]
        return (
            206,
            {
                "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
                "Content-Length": str(len(data)),
                "ETag": '"0x1"',
                "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT",
                "x-ms-blob-type": "BlockBlob",
            },
            data,
        )


@pytest.fixture
def workspace() -> Iterator[FakeWorkspace]:
    fake = FakeWorkspace()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        yield fake


@pytest.fixture
def adapter() -> AzureQuantum:
    azure = AzureQuantumSettings(connection_string=CONNECTION_STRING)
    return AzureQuantum(Settings(suppliers=SupplierSettings(azure_quantum=azure)))


def submit(adapter: AzureQuantum, job_id: str, backend: str, qasm: str, shots: int = 100) -> str:
    return adapter.submit(SubmitRequest(job_id, target(backend), parsed(qasm), shots))


def job_url(task_id: str) -> str:
    return f"{WORKSPACE}/jobs/{task_id}"


# -- submit -------------------------------------------------------------------------------------


def test_ionq_submit_uploads_ionq_json_and_creates_the_job_with_target_format_and_shots(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a Bell circuit for IonQ's simulator
    # when it is submitted
    task_id = submit(adapter, "job-ionq-1", "ionq.simulator", BELL, shots=250)
    # then the input blob is our ionq.circuit.v1 JSON
    data, headers = workspace.input_blob(task_id)
    assert json.loads(data) == {
        "gateset": "qis",
        "qubits": 2,
        "circuit": [{"gate": "h", "target": 0}, {"gate": "cnot", "control": 0, "target": 1}],
    }
    assert headers["x-ms-blob-content-type"] == "application/json"
    # and the one job created names the target, the formats and the shots
    (job,) = workspace.job_puts
    assert task_id == azure_job_id("job-ionq-1")
    assert job["target"] == "ionq.simulator"
    assert job["providerId"] == "ionq"
    assert job["inputDataFormat"] == "ionq.circuit.v1"
    assert job["outputDataFormat"] == "ionq.quantum-results.v1"
    assert job["inputParams"] == {"shots": 250}
    assert job["inputDataUri"] == f"{STORE}/job-{task_id}/inputData"
    assert job["metadata"]["qcos_job_id"] == "job-ionq-1"
    # and every request went to the workspace or its storage, with the key on the workspace's
    hosts = {urlsplit(str(r.url)).hostname for r in workspace.seen}
    assert hosts == {f"{LOCATION}.quantum.azure.com", urlsplit(STORE).hostname}
    assert all(
        r.headers["x-ms-quantum-api-key"] == API_KEY
        for r in workspace.seen
        if str(r.url).startswith(WORKSPACE)
    )


def test_quantinuum_submit_uploads_the_circuit_as_openqasm_2(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given the asymmetric circuit for Quantinuum's emulator
    # when it is submitted
    task_id = submit(adapter, "job-quantinuum-1", "quantinuum.sim.h2-1e", ASYMMETRIC)
    # then the input blob is OpenQASM 2 with the circuit's registers and measurements
    data, headers = workspace.input_blob(task_id)
    qasm = data.decode()
    assert qasm.startswith("OPENQASM 2.0;")
    assert "creg a[2];" in qasm and "creg b[1];" in qasm
    assert "measure q[2] -> a[0];" in qasm
    assert headers["x-ms-blob-content-type"] == "application/qasm"
    (job,) = workspace.job_puts
    assert job["inputDataFormat"] == "honeywell.openqasm.v1"
    assert job["outputDataFormat"] == "honeywell.quantum-results.v1"
    assert job["providerId"] == "quantinuum"
    assert job["inputParams"] == {"shots": 100}


def test_rigetti_submit_uploads_base_profile_qir_with_its_entry_point(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a Bell circuit for Rigetti's QVM
    # when it is submitted
    task_id = submit(adapter, "job-rigetti-1", "rigetti.sim.qvm", BELL, shots=40)
    # then the input blob is QIR (base profile) and the job declares it
    data, headers = workspace.input_blob(task_id)
    qir = data.decode()
    assert "define i64 @ENTRYPOINT__main()" in qir
    assert '"qir_profiles"="base_profile"' in qir
    assert "__quantum__qis__cnot__body" in qir or "__quantum__qis__cx__body" in qir
    assert headers["x-ms-blob-content-type"] == "qir.v1"
    (job,) = workspace.job_puts
    assert job["inputDataFormat"] == "qir.v1"
    assert job["outputDataFormat"] == "microsoft.quantum-results.v2"
    assert job["inputParams"] == {
        "shots": 40,
        "items": [{"entryPoint": "ENTRYPOINT__main", "arguments": []}],
    }


def test_a_redelivered_submit_finds_the_job_it_created(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a job already submitted
    first = submit(adapter, "job-redelivered", "ionq.simulator", BELL)
    # when its message is delivered again
    second = submit(adapter, "job-redelivered", "ionq.simulator", BELL)
    # then the same Azure job answers, and no second job was created
    assert second == first
    assert len(workspace.job_puts) == 1


def test_a_submit_cut_off_after_the_upload_completes_on_redelivery(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a first delivery whose job creation fails after the input was uploaded
    task_id = azure_job_id("job-cut-off")
    workspace.fail_next("PUT", f"/jobs/{task_id}", 503, {"code": "Busy", "message": "try later"})
    with pytest.raises(SupplierUnavailable):
        submit(adapter, "job-cut-off", "ionq.simulator", BELL)
    # when the message is delivered again
    again = submit(adapter, "job-cut-off", "ionq.simulator", BELL)
    # then the input is written again (overwritten) and exactly one job exists
    uploads = [r for r in workspace.seen if r.method == "PUT" and str(r.url).startswith(STORE)]
    assert again == task_id
    assert len(uploads) == 2
    assert list(workspace.jobs) == [task_id]
    assert json.loads(workspace.input_blob(task_id)[0])["qubits"] == 2


def test_a_submit_that_loses_the_race_to_create_the_job_returns_that_job(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given another delivery creates the job between this one's GET and PUT
    task_id = azure_job_id("job-raced")
    workspace.jobs[task_id] = {"id": task_id, "status": "Waiting", "itemType": "Job"}
    workspace.fail_next(
        "GET", f"/jobs/{task_id}", 404, {"code": "JobNotFound", "message": "no such job"}
    )
    # when this delivery submits
    found = submit(adapter, "job-raced", "ionq.simulator", BELL)
    # then the PUT's 409 is read as "the job exists": its id comes back
    assert found == task_id
    assert len(workspace.job_puts) == 1


def test_a_circuit_rigetti_cannot_record_is_refused_before_anything_is_sent(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a circuit with a classical bit nothing is measured into
    qasm = V2 + "qreg q[2];\ncreg c[2];\nh q[0];\nmeasure q[0] -> c[0];\n"
    # when it is submitted to Rigetti
    with pytest.raises(CircuitDoesNotFit, match="never measured into"):
        submit(adapter, "job-unmeasured", "rigetti.sim.qvm", qasm)
    # then nothing reached Azure
    assert workspace.seen == []


# -- poll ---------------------------------------------------------------------------------------


def test_poll_follows_waiting_executing_succeeded_to_counts_in_qiskit_order(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given the asymmetric circuit submitted to IonQ with 100 shots
    task_id = submit(adapter, "job-poll", "ionq.qpu.aria-1", ASYMMETRIC, shots=100)
    ionq = target("ionq.qpu.aria-1")
    # when it is polled while Azure moves it on
    waiting = adapter.poll(ionq, task_id)
    workspace.set_status(task_id, "Executing")
    executing = adapter.poll(ionq, task_id)
    # IonQ's histogram: 5 = qubits 0 and 2 set; 4 = qubit 2 only
    workspace.succeed(task_id, json.dumps({"histogram": {"5": 0.6, "4": 0.4}}).encode())
    done = adapter.poll(ionq, task_id)
    # then the states follow, and the counts are in qiskit's keys, summing to the shots
    assert (waiting.state, waiting.raw_status) == (SupplierState.QUEUED, "Waiting")
    assert executing.state is SupplierState.RUNNING
    assert done.state is SupplierState.COMPLETED
    assert done.counts == {"1 01": 60, "0 01": 40}
    assert done.execution_time_ms == pytest.approx(500.0)
    assert done.queue_time_ms == pytest.approx(2000.0)


def test_quantinuum_results_per_register_become_qiskit_keys(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given the asymmetric circuit ran on Quantinuum
    task_id = submit(adapter, "job-quantinuum-results", "quantinuum.sim.h2-1e", ASYMMETRIC, 3)
    # and Quantinuum reports each register's bits per shot, highest first
    results = {"a": ["01", "01", "10"], "b": ["1", "1", "0"], "access_token": "x"}
    workspace.succeed(task_id, json.dumps(results).encode())
    # when it is polled
    done = adapter.poll(target("quantinuum.sim.h2-1e"), task_id)
    # then the keys are qiskit's: register b, a space, then a[1] a[0]
    assert done.counts == {"1 01": 2, "0 10": 1}


def test_rigetti_qir_results_become_qiskit_keys_without_lost_shots(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given the asymmetric circuit ran on Rigetti through QIR
    task_id = submit(adapter, "job-rigetti-results", "rigetti.sim.qvm", ASYMMETRIC, 11)
    # and the results record register b, then a (highest bit first); one shot lost a qubit
    histogram = [
        {"Outcome": {"Item1": [1], "Item2": [0, 1]}, "Display": "([1], [0, 1])", "Count": 7},
        {"Outcome": {"Item1": [0], "Item2": [0, 0]}, "Display": "([0], [0, 0])", "Count": 3},
        {"Outcome": {"Item1": [2], "Item2": [0, 1]}, "Display": "([2], [0, 1])", "Count": 1},
    ]
    output = {
        "DataFormat": "microsoft.quantum-results.v2",
        "Results": [{"Histogram": histogram, "Shots": []}],
    }
    workspace.succeed(task_id, json.dumps(output).encode())
    # when it is polled
    done = adapter.poll(target("rigetti.sim.qvm"), task_id)
    # then the counts are qiskit's, and the lost shot is left out
    assert done.counts == {"1 01": 7, "0 00": 3}


def test_a_failed_job_fails_with_its_reason_readable_and_without_the_signature(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a job Azure failed, with an error that quotes a signed URL
    task_id = submit(adapter, "job-failed", "ionq.simulator", BELL)
    message = f"Could not read {STORE}/job-{task_id}/inputData?{SAS}: circuit too deep"
    workspace.set_status(task_id, "Failed", errorData={"code": "InvalidInput", "message": message})
    # when it is polled
    failed = adapter.poll(target("ionq.simulator"), task_id)
    # then the task failed with a readable reason and no signature
    assert failed.state is SupplierState.FAILED
    assert failed.counts is None
    assert failed.reason is not None
    assert failed.reason.startswith("InvalidInput: Could not read")
    assert "circuit too deep" in failed.reason
    assert SIGNATURE not in failed.reason and "sig=" in failed.reason


@pytest.mark.parametrize(
    ("status", "headers"), [(503, {}), (429, {"Retry-After": "3600"}), (500, {})]
)
def test_a_transient_answer_to_a_poll_is_unavailable_at_once(
    workspace: FakeWorkspace, adapter: AzureQuantum, status: int, headers: dict[str, str]
) -> None:
    # given a submitted job, and Azure answering its next read with a transient error
    task_id = submit(adapter, f"job-transient-{status}", "ionq.simulator", BELL)
    workspace.fail_next(
        "GET", f"/jobs/{task_id}", status, {"code": "Busy", "message": "later"}, **headers
    )
    before = len(workspace.seen)
    # when it is polled
    started = time.perf_counter()
    with pytest.raises(SupplierUnavailable, match=f"HTTP {status}") as raised:
        adapter.poll(target("ionq.simulator"), task_id)
    # then it is unavailable (the queue retries) after one request, without sleeping
    assert raised.value.status == 503
    assert len(workspace.seen) - before == 1
    assert time.perf_counter() - started < 5.0
    # and the next poll reads the job again
    assert adapter.poll(target("ionq.simulator"), task_id).state is SupplierState.QUEUED


def test_a_401_is_rejected_and_does_not_echo_the_key(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given Azure refusing the workspace's key
    task_id = azure_job_id("job-unauthorised")
    workspace.fail_next(
        "GET",
        f"/jobs/{task_id}",
        401,
        {"code": "Unauthorized", "message": f"x-ms-quantum-api-key: {API_KEY} is not valid"},
    )
    # when a job is polled
    with pytest.raises(SupplierRejected) as raised:
        adapter.poll(target("ionq.simulator"), task_id)
    # then the job fails with the reason, and the key is not in it
    assert "HTTP 401" in raised.value.detail
    assert API_KEY not in raised.value.detail


def test_a_job_azure_does_not_know_is_rejected(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a task id no job has
    # when it is polled
    with pytest.raises(SupplierRejected, match="HTTP 404"):
        adapter.poll(target("ionq.simulator"), azure_job_id("job-unknown"))


def test_results_that_cannot_be_read_are_rejected(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a succeeded IonQ job whose output has no histogram
    task_id = submit(adapter, "job-garbled", "ionq.simulator", BELL)
    workspace.succeed(task_id, b'{"unexpected": true}')
    # when it is polled
    with pytest.raises(SupplierRejected, match="cannot read"):
        adapter.poll(target("ionq.simulator"), task_id)


# -- cancel and credentials ---------------------------------------------------------------------


def test_cancel_asks_azure_and_the_job_then_reads_cancelled(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a running job
    task_id = submit(adapter, "job-cancel", "ionq.simulator", BELL)
    workspace.set_status(task_id, "Executing")
    # when it is cancelled
    adapter.cancel(target("ionq.simulator"), task_id)
    requested = adapter.poll(target("ionq.simulator"), task_id)
    workspace.set_status(task_id, "Cancelled")
    cancelled = adapter.poll(target("ionq.simulator"), task_id)
    # then Azure was asked once, and the job reads running until Azure has cancelled it
    assert workspace.cancels == [task_id]
    assert requested.state is SupplierState.RUNNING
    assert cancelled.state is SupplierState.CANCELLED


def test_a_job_that_cannot_be_cancelled_any_more_is_rejected(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a finished job Azure will not cancel
    task_id = submit(adapter, "job-finished", "ionq.simulator", BELL)
    workspace.fail_next(
        "POST", f"/jobs/{task_id}:cancel", 409, {"code": "Conflict", "message": "job finished"}
    )
    # when it is cancelled
    # then the refusal comes back as permanent
    with pytest.raises(SupplierRejected, match="HTTP 409"):
        adapter.cancel(target("ionq.simulator"), task_id)


def test_credentials_that_work_report_no_reason(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a workspace that answers
    # when the credentials are checked
    reason = adapter.check_credentials()
    # then there is nothing to report
    assert reason is None
    assert [urlsplit(str(r.url)).path.rsplit("/", 1)[1] for r in workspace.seen] == ["quotas"]


def test_credentials_azure_refuses_report_why(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a workspace that refuses the key
    workspace.fail_next("GET", "/quotas", 401, {"code": "Unauthorized", "message": "bad key"})
    # when the credentials are checked
    reason = adapter.check_credentials()
    # then the reason says so
    assert reason is not None
    assert "401" in reason and "bad key" in reason


def test_a_malformed_connection_string_is_rejected_without_echoing_it(
    workspace: FakeWorkspace,
) -> None:
    # given a connection string with a key but no workspace
    broken = f"ApiKey={API_KEY};Nonsense"
    azure = AzureQuantumSettings(connection_string=broken)
    adapter = AzureQuantum(Settings(suppliers=SupplierSettings(azure_quantum=azure)))
    # when a job is polled
    with pytest.raises(SupplierRejected) as raised:
        adapter.poll(target("ionq.simulator"), azure_job_id("job-x"))
    # then the reason names the setting, not its value, and nothing was sent
    assert "QCOS_AZURE_QUANTUM_CONNECTION_STRING" in raised.value.detail
    assert API_KEY not in raised.value.detail
    assert workspace.seen == []


def test_a_target_of_a_provider_the_adapter_cannot_submit_to_is_refused(
    workspace: FakeWorkspace, adapter: AzureQuantum
) -> None:
    # given a target whose provider the adapter does not submit to
    alien = replace(target("ionq.simulator"), ref="pasqal", provider="pasqal")
    # when a circuit is submitted to it
    # then it is refused before any request
    with pytest.raises(CircuitDoesNotFit, match="provider"):
        adapter.submit(SubmitRequest("job-alien", alien, parsed(BELL), 10))
    assert workspace.seen == []
