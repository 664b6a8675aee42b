"""`shared.suppliers.azure_quantum` and `shared.circuits.to_ionq`, without the network: status
table, error sorting, the IonQ translation and its bit order, emulation, and what the adapter
keeps in step with the azure-quantum SDK."""

from __future__ import annotations

import inspect
import json
import random
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.circuits.bitorder import probabilities_to_counts
from shared.circuits.to_ionq import counts_from_histogram, to_ionq
from shared.config import Settings
from shared.errors import CircuitDoesNotFit
from shared.suppliers import azure_quantum
from shared.suppliers.azure_quantum import (
    FORMATS,
    QIR_BASIS_GATES,
    STATUS_MAP,
    AzureQuantum,
    azure_job_id,
    managed_identity,
    supplier_error,
)
from shared.suppliers.base import SupplierRejected, SupplierState, SupplierUnavailable, map_status
from shared.suppliers.catalog import supplier
from tests.circuits import BELL

ROOT = Path(__file__).resolve().parents[2]
V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
# Qubits 0 and 2 set; qiskit's key for that outcome is '1 01' (register b, then a[1] a[0]).
ASYMMETRIC = V2 + (
    "qreg q[3];\ncreg a[2];\ncreg b[1];\nx q[0];\nx q[2];\n"
    "measure q[2] -> a[0];\nmeasure q[1] -> a[1];\nmeasure q[0] -> b[0];\n"
)
IONQ_GATES = {"x", "y", "z", "h", "s", "si", "t", "ti", "v", "vi", "rx", "ry", "rz", "cnot", "swap"}
SAS_URL = (
    "https://acct.blob.core.windows.net/job-1/rawOutputData"
    "?sv=2024-05-04&se=2099-01-01&sp=r&sig=AbCdSeCrEtSiGnAtUrE%3D"
)


def parsed(qasm: str) -> ParsedCircuit:
    return parse_circuit(qasm, CircuitLimits(262_144, 64, 1024, 1_000_000, 100_000))


# -- statuses -----------------------------------------------------------------------------------

EXPECTED_STATES = {
    "Queued": SupplierState.QUEUED,
    "Waiting": SupplierState.QUEUED,
    "Executing": SupplierState.RUNNING,
    "Finishing": SupplierState.RUNNING,
    "CancellationRequested": SupplierState.RUNNING,
    "Cancelling": SupplierState.RUNNING,
    "Succeeded": SupplierState.COMPLETED,
    "Completed": SupplierState.COMPLETED,
    "Failed": SupplierState.FAILED,
    "Cancelled": SupplierState.CANCELLED,
}


def _sdk_statuses() -> list[str]:
    from azure.quantum._client.models import JobStatus

    return [status.value for status in JobStatus]


@pytest.mark.parametrize("status", _sdk_statuses())
def test_every_status_of_the_sdk_maps_to_the_state_it_means(status: str) -> None:
    # given a status azure-quantum's JobStatus lists
    # when it is mapped
    state = map_status(STATUS_MAP, status)
    # then it is the state it means, never UNKNOWN
    assert state is EXPECTED_STATES[status]


def test_the_status_table_holds_exactly_the_sdks_statuses() -> None:
    # given the SDK's statuses
    # when they are compared with the table's keys
    # then nothing is missing and nothing is invented
    assert set(STATUS_MAP) == {status.upper() for status in _sdk_statuses()}


@pytest.mark.parametrize("raw", ["Paused", "", None, "Succeeded-ish"])
def test_a_status_no_table_knows_is_unknown(raw: object) -> None:
    # given a status azure-quantum 3.10.0 does not have
    # when it is mapped
    # then it is UNKNOWN: keep polling, guess nothing
    assert map_status(STATUS_MAP, raw) is SupplierState.UNKNOWN


# -- errors -------------------------------------------------------------------------------------


def http_error(status: int, message: str = "(Busy) try later") -> HttpResponseError:
    error = HttpResponseError(message=message)
    error.status_code = status
    return error


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_status_that_may_pass_is_unavailable(status: int) -> None:
    # given an answer the queue may retry
    # when it is sorted
    sorted_error = supplier_error(http_error(status), "reading job 1")
    # then it is unavailable (503: the queue retries), naming the status
    assert isinstance(sorted_error, SupplierUnavailable)
    assert f"HTTP {status}" in sorted_error.detail


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_a_status_that_will_not_pass_is_rejected(status: int) -> None:
    # given an answer a retry would only repeat
    # when it is sorted
    sorted_error = supplier_error(http_error(status, "(Bad) no"), "submitting to ionq.simulator")
    # then the job fails with it
    assert isinstance(sorted_error, SupplierRejected)
    assert f"HTTP {status}" in sorted_error.detail and "(Bad) no" in sorted_error.detail


def not_found() -> ResourceNotFoundError:
    error = ResourceNotFoundError(message="(JobNotFound) no such job")
    error.status_code = 404
    return error


@pytest.mark.parametrize(
    "error", [ClientAuthenticationError(message="(Unauthorized) bad key"), not_found()]
)
def test_bad_credentials_and_missing_jobs_are_rejected(error: Exception) -> None:
    # given an authentication failure or a 404, as the SDK raises them
    # when it is sorted
    sorted_error = supplier_error(error, "reading job 1")
    # then it is permanent, with Azure's words
    assert isinstance(sorted_error, SupplierRejected)
    assert str(error).splitlines()[0] in sorted_error.detail


@pytest.mark.parametrize(
    "error",
    [
        ServiceRequestError("Connection refused"),
        ServiceResponseError("Connection reset by peer"),
        ServiceResponseTimeoutError("Read timed out"),
        TimeoutError("timed out"),
        ConnectionError("refused"),
        HttpResponseError(message="no response"),  # no status code: nothing came back
    ],
)
def test_a_transport_failure_is_unavailable(error: Exception) -> None:
    # given a request that got no answer
    # when it is sorted
    # then it may pass
    assert isinstance(supplier_error(error, "reading job 1"), SupplierUnavailable)


def test_an_error_that_is_not_azures_is_left_alone() -> None:
    # given a bug, not a supplier's answer
    # when it is sorted
    # then it is not disguised as a supplier error
    assert supplier_error(KeyError("histogram"), "reading job 1") is None


@pytest.mark.parametrize(
    "error",
    [
        http_error(503, f"(Busy) could not write {SAS_URL}"),
        http_error(403, f"(AuthorizationFailure) {SAS_URL} refused"),
        ServiceRequestError(f"Max retries exceeded with url: {SAS_URL}"),
    ],
)
def test_a_signed_url_in_an_error_does_not_survive(error: Exception) -> None:
    # given an SDK error that quotes a SAS URL
    # when it is sorted
    sorted_error = supplier_error(error, "reading job 1")
    # then the signature is masked, and the message is still one readable line
    assert sorted_error is not None
    assert "AbCdSeCrEtSiGnAtUrE" not in sorted_error.detail
    assert "sig=***" in sorted_error.detail
    assert "\n" not in sorted_error.detail


# -- IonQ translation ---------------------------------------------------------------------------


def test_every_gate_ionq_names_is_written_as_ionq_names_it() -> None:
    # given one of each gate IonQ's JSON has, on qubits of their own
    circuit = parsed(
        V2 + "qreg q[17];\ncreg c[17];\nh q[0];\nx q[1];\ny q[2];\nz q[3];\ns q[4];\n"
        "sdg q[5];\nt q[6];\ntdg q[7];\nsx q[8];\nsxdg q[9];\nrx(0.5) q[10];\n"
        "ry(0.25) q[11];\nrz(-0.125) q[12];\ncx q[13],q[14];\nswap q[15],q[16];\n"
        "id q[0];\nbarrier q;\nmeasure q -> c;\n"
    ).circuit
    # when it is translated
    body = to_ionq(circuit).body
    # then each is IonQ's gate on the same qubits; identities, barriers, measures are dropped
    assert body["gateset"] == "qis" and body["qubits"] == 17
    assert body["circuit"] == [
        {"gate": "h", "target": 0},
        {"gate": "x", "target": 1},
        {"gate": "y", "target": 2},
        {"gate": "z", "target": 3},
        {"gate": "s", "target": 4},
        {"gate": "si", "target": 5},
        {"gate": "t", "target": 6},
        {"gate": "ti", "target": 7},
        {"gate": "v", "target": 8},
        {"gate": "vi", "target": 9},
        {"gate": "rx", "target": 10, "rotation": 0.5},
        {"gate": "ry", "target": 11, "rotation": 0.25},
        {"gate": "rz", "target": 12, "rotation": -0.125},
        {"gate": "cnot", "control": 13, "target": 14},
        {"gate": "swap", "targets": [15, 16]},
    ]


def test_gates_ionq_lacks_are_rewritten_in_gates_it_has() -> None:
    # given gates IonQ's JSON does not name
    circuit = parsed(
        V2 + "qreg q[3];\nu3(0.1,0.2,0.3) q[0];\ncz q[0],q[1];\nccx q[0],q[1],q[2];\n"
    ).circuit
    # when it is translated
    program = to_ionq(circuit)
    # then only IonQ's gates remain, and every qubit is measured (it measured none)
    names = {gate["gate"] for gate in program.body["circuit"]}
    assert names <= IONQ_GATES
    assert "cnot" in names
    assert program.sources == {0: 0, 1: 1, 2: 2}


def test_a_reset_before_a_qubit_is_used_is_dropped() -> None:
    # given a circuit that resets its fresh qubits first, as many programs do
    circuit = parsed(V2 + "qreg q[2];\ncreg c[2];\nreset q;\nh q[0];\nmeasure q -> c;\n").circuit
    # when it is translated
    # then the resets (no-ops on |0>) are gone
    assert to_ionq(circuit).body["circuit"] == [{"gate": "h", "target": 0}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("creg c[2];\nmeasure q[0] -> c[0];\nx q[0];\nmeasure q[0] -> c[1];", "used after"),
        ("creg c[2];\nmeasure q[0] -> c[0];\nmeasure q[0] -> c[1];", "measured twice"),
        ("creg c[1];\nh q[0];\nreset q[0];\nmeasure q[0] -> c[0];", "reset"),
        ("creg c[1];\nh q[0];\nmeasure q[0] -> c[0];\nif (c==1) x q[1];", "control flow"),
    ],
)
def test_what_ionq_cannot_run_is_refused_with_the_reason(body: str, reason: str) -> None:
    # given a mid-circuit measurement, a reset of a used qubit, or classical control
    circuit = parsed(V2 + "qreg q[2];\n" + body + "\n").circuit
    # when it is translated
    # then it does not fit, and the message says why
    with pytest.raises(CircuitDoesNotFit, match=reason):
        to_ionq(circuit)


def test_an_ionq_histogram_reads_back_in_qiskits_bit_order() -> None:
    # given the asymmetric circuit translated for IonQ
    program = to_ionq(parsed(ASYMMETRIC).circuit)
    assert program.body["circuit"] == [{"gate": "x", "target": 0}, {"gate": "x", "target": 2}]
    # when IonQ's answer for it comes back: 5 = bits 0 and 2 = qubits 0 and 2 set
    counts = counts_from_histogram({"5": 1.0}, 1000, program.circuit)
    # then it is qiskit's key for that outcome
    assert counts == {"1 01": 1000}


def test_the_layout_stored_with_the_job_reads_histograms_as_the_circuit_does() -> None:
    # given the layout the adapter stores in the Azure job's metadata, read back as JSON
    program = to_ionq(parsed(ASYMMETRIC).circuit)
    layout = azure_quantum._layout(program.circuit)
    layout["sources"] = sorted(program.sources.items())
    skeleton = azure_quantum._skeleton(json.loads(json.dumps(layout)))
    histogram = {"5": 0.5, "4": 0.25, "1": 0.125, "3": 0.125}
    # when a histogram is read through it and through the circuit itself
    # then both give the same counts
    assert counts_from_histogram(histogram, 800, skeleton) == counts_from_histogram(
        histogram, 800, program.circuit
    )
    assert counts_from_histogram(histogram, 800, skeleton) == {
        "1 01": 400,
        "0 01": 200,
        "1 00": 100,
        "1 10": 100,
    }


def test_probabilities_become_counts_by_largest_remainder_ties_to_the_smaller_key() -> None:
    # given three equally likely outcomes and 100 shots
    # when they become counts
    counts = probabilities_to_counts({"10": 1 / 3, "00": 1 / 3, "01": 1 / 3}, 100)
    # then the one shot left over goes to the smallest key
    assert counts == {"00": 34, "01": 33, "10": 33}


def test_probabilities_become_counts_that_always_sum_to_the_shots() -> None:
    # given many random histograms, rounded as IonQ rounds them
    rng = random.Random(7)
    for _ in range(200):
        weights = [rng.random() for _ in range(rng.randint(1, 40))]
        total = sum(weights)
        histogram = {format(i, "b"): round(w / total, 6) for i, w in enumerate(weights)}
        shots = rng.randint(1, 20_000)
        # when they become counts
        counts = probabilities_to_counts(histogram, shots)
        # then the counts sum to the shots, none is zero, and each is within one of exact
        assert sum(counts.values()) == shots
        assert all(count > 0 for count in counts.values())
        total_p = sum(histogram.values())
        assert all(abs(counts[k] - histogram[k] / total_p * shots) < 1 for k in counts)


@pytest.mark.parametrize("histogram", [{"0": 0.5}, {"0": -0.1, "1": 1.1}, {"0": float("nan")}])
def test_a_histogram_that_is_not_one_is_refused(histogram: dict[str, float]) -> None:
    # given probabilities that do not add up to 1, or are not probabilities
    # when they become counts
    # then they are refused
    with pytest.raises(ValueError):
        probabilities_to_counts(histogram, 100)


# -- the adapter, offline -----------------------------------------------------------------------


def test_importing_the_adapter_does_not_import_azure_quantum() -> None:
    # given a fresh interpreter
    probe = (
        "import sys\n"
        "import shared.suppliers.azure_quantum\n"
        "print(sorted(m for m in sys.modules if m == 'azure.quantum' "
        "or m.startswith('azure.quantum.') or m.startswith('qdk')))\n"
    )
    # when it imports the adapter
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # then neither azure.quantum nor the qdk was imported
    assert out.stdout.strip() == "[]"


def test_the_azure_job_id_is_the_same_for_a_job_and_different_between_jobs() -> None:
    # given two gateway job ids
    # when their Azure job ids are derived twice
    # then a job always gets the same one, and two jobs different ones
    assert azure_job_id("job-a") == azure_job_id("job-a")
    assert azure_job_id("job-a") != azure_job_id("job-b")


def test_an_unconfigured_adapter_is_emulated() -> None:
    # given no Azure Quantum settings
    # when the adapter is asked
    # then it is not configured
    assert AzureQuantum(Settings()).configured() is False


def test_the_managed_identity_is_the_user_assigned_one_when_a_client_id_is_set() -> None:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    # given a client id, and none
    # when the credential is made
    # then it is that managed identity, or what DefaultAzureCredential finds
    assert isinstance(
        managed_identity("11111111-2222-3333-4444-555555555555"), ManagedIdentityCredential
    )
    assert isinstance(managed_identity(None), DefaultAzureCredential)


# azure.quantum.qiskit still imports the deprecated `qsharp` package (the adapter uses `qdk`).
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_job_formats_are_those_of_the_sdks_backends() -> None:
    from azure.quantum.qiskit.backends.backend import QIR_BASIS_GATES as SDK_QIR_GATES
    from azure.quantum.qiskit.backends.backend import AzureQirBackend
    from azure.quantum.target import IonQ, Quantinuum

    def defaults(cls: Any) -> tuple[Any, ...]:
        parameters = inspect.signature(cls).parameters
        return tuple(
            parameters[name].default
            for name in ("input_data_format", "output_data_format", "content_type")
        )

    # given the SDK's IonQ and Quantinuum targets and its QIR backends
    qir = AzureQirBackend._azure_config(None)
    # when the adapter's table is compared with them
    # then it declares what they declare
    assert defaults(IonQ) == astuple(FORMATS["ionq"])
    assert defaults(Quantinuum) == astuple(FORMATS["quantinuum"])
    rigetti = FORMATS["rigetti"]
    assert (qir["input_data_format"], qir["output_data_format"], qir["content_type"]) == (
        rigetti.input_data_format,
        rigetti.output_data_format,
        rigetti.content_type,
    )
    assert set(QIR_BASIS_GATES) == set(SDK_QIR_GATES) - {"measure", "reset"}


# -- emulation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend",
    [
        "ionq.simulator",
        "ionq.qpu.aria-1",
        "quantinuum.sim.h2-1e",
        "rigetti.sim.qvm",
        "rigetti.qpu.cepheus-1-108q",
    ],
)
def test_a_bell_circuit_emulated_on_each_provider_gives_mostly_00_and_11(backend: str) -> None:
    # given a Bell circuit and an emulated target of each provider
    target = supplier("azure_quantum").target(backend)
    # when it is emulated
    run = AzureQuantum(Settings()).emulate(target, parsed(BELL), 1000)
    # then the counts sum to the shots and are (nearly, on a noisy device) all 00 and 11
    assert sum(run.counts.values()) == 1000
    assert run.counts.get("00", 0) + run.counts.get("11", 0) >= 900
    assert min(run.counts.get("00", 0), run.counts.get("11", 0)) >= 350


def test_a_syntax_checker_emulated_returns_all_zeros() -> None:
    # given Quantinuum's syntax checker
    target = supplier("azure_quantum").target("quantinuum.sim.h2-1sc")
    # when a Bell circuit is emulated on it
    run = AzureQuantum(Settings()).emulate(target, parsed(BELL), 500)
    # then every shot reads zero, as the real checker answers
    assert run.counts == {"00": 500}


def test_an_ionq_emulation_refuses_what_ionq_would() -> None:
    # given a mid-circuit measurement, which Aer could run but IonQ cannot
    qasm = V2 + "qreg q[1];\ncreg c[2];\nmeasure q[0] -> c[0];\nx q[0];\nmeasure q[0] -> c[1];\n"
    target = supplier("azure_quantum").target("ionq.simulator")
    # when it is emulated on an IonQ target
    # then it is refused as the cloud path refuses it
    with pytest.raises(CircuitDoesNotFit, match="IonQ measures every qubit once"):
        AzureQuantum(Settings()).emulate(target, parsed(qasm), 100)
