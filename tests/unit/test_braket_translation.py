"""`shared.circuits.to_braket` and the Braket adapter's offline parts: the program, the bit order
through the SDK's local simulators, refusals, statuses and error sorting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.circuits.bitorder import clbit_sources, counts_from_qubit_outcomes
from shared.circuits.to_braket import (
    BRAKET_GATES,
    counts_from_outcomes,
    counts_from_results,
    to_braket,
)
from shared.config import Settings
from shared.errors import CircuitDoesNotFit
from shared.suppliers import aer
from shared.suppliers.base import SupplierRejected, SupplierState, SupplierUnavailable, map_status
from shared.suppliers.braket import STATUS_MAP, Braket, sort_error
from shared.suppliers.catalog import supplier

REPO_ROOT = Path(__file__).resolve().parents[2]
V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
# qubits 0 and 2 flipped, measured out of order into two registers: qiskit's key is '1 01'.
ASYMMETRIC = V2 + (
    "qreg q[3];\ncreg a[2];\ncreg b[1];\nx q[0];\nx q[2];\n"
    "measure q[2] -> a[0];\nmeasure q[1] -> a[1];\nmeasure q[0] -> b[0];\n"
)
# clbits take qubits in a cycle (clbit 0 <- qubit 2, 1 <- 0, 2 <- 1): qiskit's key is '0 10'.
CYCLIC = V2 + (
    "qreg q[3];\ncreg a[2];\ncreg b[1];\nx q[0];\n"
    "measure q[0] -> a[1];\nmeasure q[1] -> b[0];\nmeasure q[2] -> a[0];\n"
)
# A generic, entangled state of three qubits, so that every gate after it changes the state.
PREPARE = (
    "qreg q[3];\ncreg c[3];\n"
    "ry(0.9) q[0];\nry(1.7) q[1];\nry(2.3) q[2];\nrz(0.4) q[0];\nrz(1.1) q[1];\nrz(2.9) q[2];\n"
    "cx q[0],q[1];\ncx q[1],q[2];\nrx(0.6) q[1];\n"
)
GATES = [
    "h q[0];", "x q[1];", "y q[2];", "z q[0];", "s q[1];", "sdg q[2];", "t q[0];",
    "tdg q[1];", "sx q[2];", "sxdg q[0];", "id q[1];", "rx(0.7) q[0];", "ry(-1.3) q[1];",
    "rz(pi/5) q[2];", "p(0.8) q[0];", "u(0.1,0.2,0.3) q[1];", "u1(0.5) q[2];",
    "u2(0.3,-0.4) q[0];", "u3(1.2,0.5,-0.7) q[1];", "cx q[2],q[0];", "cy q[0],q[2];",
    "cz q[1],q[2];", "ch q[0],q[1];", "swap q[0],q[2];", "cp(0.9) q[1],q[0];",
    "crx(0.4) q[2],q[1];", "cry(1.1) q[0],q[1];", "crz(-0.6) q[1],q[2];", "cu1(0.3) q[0],q[2];",
    "cu3(0.2,0.3,0.4) q[2],q[0];", "csx q[0],q[1];", "rxx(0.5) q[0],q[2];", "rzz(1.5) q[1],q[2];",
    "ccx q[0],q[1],q[2];", "cswap q[2],q[0],q[1];", "rccx q[1],q[2],q[0];",
]  # fmt: skip


def parsed(qasm: str, max_qubits: int = 40) -> ParsedCircuit:
    bounds = CircuitLimits(
        max_qasm_bytes=262_144,
        max_qubits=max_qubits,
        max_clbits=1024,
        max_operations=1_000_000,
        max_depth=100_000,
    )
    return parse_circuit(qasm, bounds)


def braket_state(source: str) -> np.ndarray:
    """The state Braket's local simulator prepares with `source`'s gates (measurements left
    out), in Braket's order: qubit 0 is the most significant bit of the index."""
    from braket.devices import LocalSimulator
    from braket.ir.openqasm import Program

    lines = [
        line
        for line in source.splitlines()
        if not line.startswith("bit[") and " = measure " not in line
    ]
    program = Program(source="\n".join([*lines, "#pragma braket result state_vector"]))
    result = LocalSimulator("braket_sv").run(program, shots=0).result()
    return np.asarray(result.values[0])


def most_frequent(counts: dict[str, int]) -> str:
    return max(counts, key=lambda key: counts[key])


# --- the bit order -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sv1", "dm1"])
@pytest.mark.parametrize(
    ("qasm", "key"), [(ASYMMETRIC, "1 01"), (CYCLIC, "0 10")], ids=["asymmetric", "cyclic"]
)
def test_an_asymmetric_circuit_gives_aers_key_through_the_sdks_local_simulator(
    backend: str, qasm: str, key: str
) -> None:
    # given a circuit whose qubits, clbits and registers are all in different orders
    circuit = parsed(qasm)
    target = supplier("braket").target(backend)
    # when it runs on Aer and on the SDK's local simulator through the Braket program
    on_aer = aer.run(circuit, 200, statevector_max_qubits=24).counts
    on_braket = Braket(Settings()).emulate(target, circuit, 200)
    # then both give qiskit's key, every shot
    assert most_frequent(on_aer) == key
    assert on_braket.counts == {key: 200}
    assert "LocalSimulator" in on_braket.method


def test_a_circuit_without_measurements_is_measured_in_full_as_on_aer() -> None:
    # given a circuit that declares a register but measures nothing
    circuit = parsed(V2 + "qreg q[3];\ncreg c[2];\nx q[1];\n")
    # when it runs on Aer and on the local simulator of sv1
    on_aer = aer.run(circuit, 50, statevector_max_qubits=24).counts
    on_braket = Braket(Settings()).emulate(supplier("braket").target("sv1"), circuit, 50)
    # then every qubit was measured into a register of its own, after the declared one
    assert on_aer == on_braket.counts == {"010 00": 50}
    assert on_braket.details["measured_all"] is True


def test_counts_do_not_depend_on_the_order_braket_lists_the_measured_qubits() -> None:
    # given the program of the asymmetric circuit, and one shot's outcome per qubit
    program = to_braket(parsed(ASYMMETRIC))
    qubit_values = {0: "1", 1: "0", 2: "1"}
    # when Braket lists the measured qubits in measurement order, or sorted, or reversed
    keys = []
    for order in ([2, 1, 0], [0, 1, 2], [1, 2, 0]):
        outcome = "".join(qubit_values[q] for q in order)
        keys.append(counts_from_outcomes({outcome: 7}, order, program.source))
    # then the counts are the same, in qiskit's convention
    assert keys == [{"1 01": 7}] * 3


def test_the_layout_written_in_the_program_reproduces_the_circuits_own_keys() -> None:
    # given circuits with loose bits, gaps, empty registers and unmeasured clbits
    sources = [
        ASYMMETRIC,
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit c;\nbit[2] d;\nh q[0];\n'
        "c = measure q[0];\nd[1] = measure q[1];\n",
        V2 + "qreg q[4];\ncreg e[0];\ncreg a[3];\ncreg b[2];\nh q[3];\nmeasure q[3] -> b[1];\n"
        "measure q[0] -> a[2];\nmeasure q[2] -> a[0];\n",
    ]
    for source in sources:
        program = to_braket(parsed(source))
        measured = sorted(clbit_sources(program.circuit).values())
        outcomes = {"".join("1" if (i + q) % 2 else "0" for q in measured): 3 for i in range(2)}
        # when counts are read back through the program text, and through the circuit itself
        from_text = counts_from_outcomes(outcomes, measured, program.source)
        from_circuit = counts_from_qubit_outcomes(outcomes, measured, program.circuit)
        # then they agree
        assert from_text == from_circuit


def test_results_with_probabilities_become_counts_that_sum_to_the_shots() -> None:
    # given a results.json with probabilities over the measured qubits, as some devices write
    program = to_braket(parsed(ASYMMETRIC))
    results = {
        "measurementProbabilities": {"101": 0.333, "111": 0.334, "001": 0.333},
        "measuredQubits": [0, 1, 2],
        "taskMetadata": {"shots": 100},
        "additionalMetadata": {"action": {"source": program.source}},
    }
    # when it is read
    counts = counts_from_results(results)
    # then the counts sum to the shots, largest remainder first, keyed as qiskit keys them
    assert counts == {"1 01": 33, "1 11": 34, "0 01": 33}


def test_results_that_do_not_echo_a_program_of_ours_are_refused() -> None:
    # given a results.json whose action is a program this gateway did not write
    results = {
        "measurements": [[1, 0]],
        "measuredQubits": [0, 1],
        "additionalMetadata": {"action": {"source": "OPENQASM 3.0;\nqubit[2] q;\n"}},
    }
    # when it is read, then it is refused rather than guessed
    with pytest.raises(ValueError, match="register layout"):
        counts_from_results(results)


# --- gates ---------------------------------------------------------------------------------------


def test_the_gate_set_is_one_the_sdks_openqasm_simulator_accepts() -> None:
    from braket.devices import LocalSimulator

    # given the operations Braket's OpenQASM simulator lists
    properties = LocalSimulator("braket_sv").properties
    supported = set(properties.action["braket.ir.openqasm.program"].supportedOperations)
    # then every Braket name the translation writes is among them
    assert set(BRAKET_GATES.values()) <= supported


@pytest.mark.parametrize("gate", GATES)
def test_each_gate_translates_to_the_same_state_on_braket(gate: str) -> None:
    from qiskit.quantum_info import Statevector

    # given a generic entangled state followed by the gate
    circuit = parsed(V2 + PREPARE + gate + "\nmeasure q -> c;\n")
    # when it is translated to a Braket program
    program = to_braket(circuit)
    # then the program uses Braket's names only, and Braket prepares qiskit's state
    gates = [line for line in program.source.splitlines()[4:] if " = measure " not in line]
    assert {re.split(r"[ (]", line, maxsplit=1)[0] for line in gates} <= set(BRAKET_GATES.values())
    expected = Statevector(circuit.circuit.remove_final_measurements(inplace=False))
    got = braket_state(program.source)
    overlap = abs(np.vdot(expected.reverse_qargs().data, got)) ** 2
    assert overlap == pytest.approx(1.0, abs=1e-9)


def test_an_entangling_circuit_samples_the_same_outcomes_on_braket_as_on_aer() -> None:
    # given a GHZ circuit written with gates that Braket names differently (cz, sdg, p)
    circuit = parsed(
        V2 + "qreg q[3];\ncreg c[3];\nh q[0];\nh q[1];\ncz q[0],q[1];\nh q[1];\n"
        "sdg q[0];\ns q[0];\np(0) q[2];\ncx q[1],q[2];\nmeasure q -> c;\n"
    )
    # when both simulators run it
    on_aer = aer.run(circuit, 400, statevector_max_qubits=24).counts
    on_braket = Braket(Settings()).emulate(supplier("braket").target("dm1"), circuit, 400)
    # then both see only the two GHZ outcomes, each often
    assert set(on_aer) == set(on_braket.counts) == {"000", "111"}
    assert min(on_braket.counts.values()) > 100


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            "qreg q[1];\ncreg c[2];\nh q[0];\nmeasure q[0] -> c[0];\nx q[0];\n"
            "measure q[0] -> c[1];\n",
            "measures only at the end of a circuit: qubit 0 is used after it was measured",
        ),
        ("qreg q[1];\ncreg c[1];\nh q[0];\nreset q[0];\nmeasure q[0] -> c[0];\n", "no reset"),
        (
            "qreg q[1];\ncreg c[1];\nmeasure q[0] -> c[0];\nif (c==1) x q[0];\n",
            "no classical control flow",
        ),
    ],
)
def test_what_braket_cannot_run_is_refused_with_the_reason(body: str, reason: str) -> None:
    # given a circuit with mid-circuit measurement, reset, or classical control
    circuit = parsed(V2 + body)
    # when it is translated, then it does not fit, and the message says why
    with pytest.raises(CircuitDoesNotFit, match=reason) as refused:
        to_braket(circuit)
    assert refused.value.status == 400


def test_the_analog_device_takes_no_circuit() -> None:
    # given QuEra Aquila, an analog device
    aquila = supplier("braket").target("aquila")
    # when a circuit is emulated on it, then it is refused as not gate-model
    with pytest.raises(CircuitDoesNotFit, match="not gate-model"):
        Braket(Settings()).emulate(aquila, parsed(ASYMMETRIC), 10)


@pytest.mark.parametrize(("backend", "limit"), [("sv1", 26), ("dm1", 13)])
def test_the_local_simulators_refuse_circuits_wider_than_they_run(backend: str, limit: int) -> None:
    # given a circuit one qubit wider than the local simulator runs
    width = limit + 1
    circuit = parsed(V2 + f"qreg q[{width}];\ncreg c[{width}];\nmeasure q -> c;\n")
    # when it is emulated, then the message names the local simulator and its limit
    with pytest.raises(CircuitDoesNotFit, match=f"at most {limit} qubits; the circuit has {width}"):
        Braket(Settings()).emulate(supplier("braket").target(backend), circuit, 10)


def test_tn1_and_the_qpus_are_emulated_on_aer() -> None:
    # given a Bell circuit
    bell = parsed(V2 + "qreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n")
    braket = Braket(Settings())
    # when it is emulated on tn1 and on IonQ Forte 1
    ideal = braket.emulate(supplier("braket").target("tn1"), bell, 300)
    noisy = braket.emulate(supplier("braket").target("forte-1"), bell, 300)
    # then tn1 is ideal Aer and Forte 1 runs on its device data
    assert set(ideal.counts) == {"00", "11"} and "ideal" in ideal.method
    assert "ionq_forte_1.json" in noisy.method and sum(noisy.counts.values()) == 300


# --- the module, statuses and errors --------------------------------------------------------


def test_importing_the_adapter_imports_neither_braket_nor_boto3() -> None:
    # given a fresh interpreter
    probe = (
        "import sys, shared.suppliers.braket, shared.circuits.to_braket\n"
        "heavy = ('braket', 'boto3', 'botocore')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    # when it imports the adapter and the translation
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    # then no SDK module was loaded
    assert done.stdout.strip() == ""


EXPECTED_STATES = {
    "CREATED": SupplierState.QUEUED,
    "QUEUED": SupplierState.QUEUED,
    "RUNNING": SupplierState.RUNNING,
    "COMPLETED": SupplierState.COMPLETED,
    "FAILED": SupplierState.FAILED,
    "CANCELLING": SupplierState.RUNNING,
    "CANCELLED": SupplierState.CANCELLED,
}


def test_every_status_of_the_braket_api_maps_to_ours_and_an_unknown_one_to_unknown() -> None:
    import botocore.session

    # given every task status in botocore's model of the Braket API
    model = botocore.session.get_session().get_service_model("braket")
    statuses = model.shape_for("QuantumTaskStatus").enum
    # then each is in the table, mapped as expected, in any case
    assert set(statuses) == set(STATUS_MAP)
    for status in statuses:
        assert map_status(STATUS_MAP, status) is EXPECTED_STATES[status]
        assert map_status(STATUS_MAP, status.lower()) is EXPECTED_STATES[status]
    # and a status nobody knows is UNKNOWN: keep polling, never guess
    assert map_status(STATUS_MAP, "PAUSED") is SupplierState.UNKNOWN
    assert map_status(STATUS_MAP, None) is SupplierState.UNKNOWN
    assert not SupplierState.UNKNOWN.terminal


def client_error(code: str, status: int, message: str = "refused") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "CreateQuantumTask",
    )


SECRET_MESSAGE = (
    "Access denied at https://bucket.s3.example/results.json?X-Amz-Security-Token=FwoGZXIvYXdz"
    "&X-Amz-Expires=300\nTraceback (most recent call last):"
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ThrottlingException", 429), SupplierUnavailable),
        (client_error("ServiceQuotaExceededException", 402), SupplierUnavailable),
        (client_error("InternalServiceException", 500), SupplierUnavailable),
        (client_error("SomethingNew", 503), SupplierUnavailable),
        (EndpointConnectionError(endpoint_url="https://braket.us-east-1"), SupplierUnavailable),
        (ReadTimeoutError(endpoint_url="https://braket.us-east-1"), SupplierUnavailable),
        (TimeoutError("timed out"), SupplierUnavailable),
        (client_error("ValidationException", 400), SupplierRejected),
        (client_error("AccessDeniedException", 403), SupplierRejected),
        (client_error("ResourceNotFoundException", 404), SupplierRejected),
        (client_error("DeviceOfflineException", 424), SupplierRejected),
        (client_error("DeviceRetiredException", 410), SupplierRejected),
        (NoCredentialsError(), SupplierRejected),
    ],
)
def test_errors_are_sorted_into_retried_and_permanent(error: Exception, expected: type) -> None:
    # when an AWS error is sorted, then it is transient (503, retried) or permanent (the job fails)
    sorted_error = sort_error(error, "create the task")
    assert type(sorted_error) is expected
    assert sorted_error is not None and "create the task" in sorted_error.detail


def test_sorted_messages_name_the_code_and_hide_tokens() -> None:
    # given an AWS error whose message carries a signed URL's token, over two lines
    error = client_error("AccessDeniedException", 403, SECRET_MESSAGE)
    # when it is sorted
    sorted_error = sort_error(error, "read the task's results")
    # then the message names the code, on one line, without the token
    assert isinstance(sorted_error, SupplierRejected)
    assert "AccessDeniedException" in sorted_error.detail
    assert "FwoGZXIvYXdz" not in sorted_error.detail and "\n" not in sorted_error.detail


def test_an_error_that_did_not_come_from_aws_is_not_sorted() -> None:
    # a bug stays a bug: the caller re-raises it
    assert sort_error(KeyError("status"), "read the task") is None
