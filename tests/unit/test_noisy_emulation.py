"""A noisy emulation scales with the circuit: the method the plan picks, the noise of the pairs
the circuit uses built once per distinct error, the device's qubits in the circuit's order, and
a run too long for the limit refused at submit with its estimate."""

from __future__ import annotations

import pytest

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.errors import LimitExceeded
from shared.suppliers import emulation
from shared.suppliers.base import Mode
from shared.suppliers.catalog import supplier
from shared.suppliers.fit import check_fits

V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
LIMITS = Settings.from_env({}).limits
# One device of each family with a data file, and IBM's snapshot.
DEVICES = [
    ("ibm_quantum", "ibm_brisbane"),
    ("braket", "garnet"),
    ("azure_quantum", "ionq.qpu.aria-1"),
]


def ghz(n: int) -> ParsedCircuit:
    entangle = "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
    qasm = V2 + f"qreg q[{n}];\ncreg c[{n}];\nh q[0];\n{entangle}measure q -> c;\n"
    return parse_circuit(qasm, CircuitLimits.from_limits(LIMITS, 127))


def brickwork(n: int, layers: int) -> ParsedCircuit:
    body = "".join(
        "".join(f"ry(0.{layer + 3}) q[{i}];\n" for i in range(n))
        + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(layer % 2, n - 1, 2))
        for layer in range(layers)
    )
    qasm = V2 + f"qreg q[{n}];\ncreg c[{n}];\n{body}measure q -> c;\n"
    return parse_circuit(qasm, CircuitLimits.from_limits(LIMITS, 127))


@pytest.mark.parametrize(("supplier_id", "backend"), DEVICES)
def test_a_ghz_20_runs_as_a_matrix_product_state_in_seconds_not_minutes(
    supplier_id: str, backend: str
) -> None:
    # given the circuit that ran for 19 minutes on a density matrix or statevector trajectories
    target = supplier(supplier_id).target(backend)
    circuit = ghz(20)
    # when
    chosen = emulation.plan(target, circuit, 1024, limits=LIMITS)
    run = emulation.emulate_target(target, circuit, 1024, limits=LIMITS)
    # then the plan picked the method that scales with it, and the run used it
    assert chosen is not None and chosen.method == "matrix_product_state"
    assert chosen.seconds < 30
    assert run.method.startswith("aer matrix_product_state, noise of ")
    assert sum(run.counts.values()) == 1024
    ideal = run.counts.get("0" * 20, 0) + run.counts.get("1" * 20, 0)
    assert 0.3 < ideal / 1024 < 0.99  # mostly GHZ, with the device's noise


def test_a_small_circuit_runs_on_one_density_matrix() -> None:
    target = supplier("braket").target("garnet")
    chosen = emulation.plan(target, ghz(4), 1024, limits=LIMITS)
    assert chosen is not None and chosen.method == "density_matrix"


def test_an_entangling_circuit_too_long_to_emulate_is_refused_with_its_estimate() -> None:
    # given 30 layers of brickwork on 22 qubits: too entangled for a matrix product state
    target = supplier("braket").target("forte-1")
    circuit = brickwork(22, 30)
    # when / then
    with pytest.raises(LimitExceeded) as refused:
        check_fits(target, circuit, 1024, mode=Mode.EMULATED, limits=LIMITS)
    assert refused.value.error_code == "RUN_TIME_LIMIT_EXCEEDED"
    assert "would run for about " in refused.value.detail
    assert "more than the limit of 300 s" in refused.value.detail


@pytest.mark.parametrize(("supplier_id", "backend"), DEVICES)
def test_the_noise_model_is_the_one_qiskit_aer_builds(supplier_id: str, backend: str) -> None:
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.noise.device import basic_device_gate_errors, basic_device_readout_errors

    # given the device cut down to the qubits a GHZ-5 uses
    device = emulation.target_device(supplier(supplier_id).target(backend))
    _, physical = device.transpile(ghz(5))
    sub = emulation.sub_target(device.target, physical)
    # when
    ours = emulation.noise_model_from_target(sub)
    # then it equals Aer's own, error for error
    theirs = NoiseModel(basis_gates=[n for n in sub.operation_names if n != "measure"])
    for name, qubits, error in basic_device_gate_errors(target=sub):
        theirs.add_quantum_error(error, name, qubits)
    for qubits, error in basic_device_readout_errors(target=sub):
        theirs.add_readout_error(error, qubits)
    assert ours == theirs


def test_an_all_to_all_device_carries_the_noise_of_the_pairs_the_circuit_uses_only() -> None:
    # given a GHZ chain of 12 on an all-to-all device (66 pairs among its qubits)
    device = emulation.target_device(supplier("azure_quantum").target("ionq.qpu.aria-1"))
    compact, physical = device.transpile(ghz(12))
    # when
    model = device._noise_model(physical, compact)  # noqa: SLF001
    # then the two-qubit errors are on the 11 pairs of the chain
    pairs = {tuple(q) for q in model.to_dict()["errors"] for q in q.get("gate_qubits", [])}
    two_qubit = {tuple(sorted(p)) for p in pairs if len(p) == 2}  # each direction of a pair
    assert len(two_qubit) == 11


def test_a_chain_mapped_onto_a_lattice_stays_a_chain() -> None:
    # given a GHZ chain of 16 mapped onto IBM's heavy-hex lattice
    device = emulation.target_device(supplier("ibm_quantum").target("ibm_brisbane"))
    compact, _ = device.transpile(ghz(16))
    # when the two-qubit gates are read in the compacted circuit's qubit order
    spans = [
        abs(compact.find_bit(a).index - compact.find_bit(b).index)
        for inst in compact.data
        if len(inst.qubits) == 2
        for a, b in [inst.qubits]
    ]
    # then every one acts on neighbours: a matrix product state moves no qubit
    assert spans and max(spans) == 1
