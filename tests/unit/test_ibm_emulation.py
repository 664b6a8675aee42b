"""IBM's emulation (no credentials): our ibm_brisbane beside qiskit-ibm-runtime's own local mode,
and the bit order of its counts.

The reference is the SDK's local testing mode, `SamplerV2(mode=FakeBrisbane())`, which runs the
circuit (transpiled to the device beforehand, as that mode requires) on Aer with the noise model
of the whole 127-qubit device. Ours runs the noise model of the qubits the circuit uses. Both are
given the same physical qubits (the same preset pass manager, seed 0), so the two distributions
should differ by sampling noise only.

The bound: two independent samples of N shots from one distribution differ, per outcome of
probability p, by a normal error of standard deviation sqrt(2 p (1 - p) / N), at most 0.011 at
N = 4000. These circuits have two dominant outcomes and a few small ones, so the total variation
distance TVD = 1/2 sum |difference| is about 0.01 to 0.02 and stays under 0.035 at four standard
deviations; 0.06 leaves room for the small differences between the two noise models. A flipped
bit order moves almost all the weight (TVD above 0.9 for the asymmetric GHZ); no noise at all
shows in the error weight, checked on its own. The local mode costs about 3 s a run: two runs.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.suppliers.base import Target
from shared.suppliers.catalog import supplier
from shared.suppliers.ibm import IBMQuantum, sampler_counts
from tests.circuits import BELL

SHOTS = 4000
TVD_BOUND = 0.06
NOISE_LEVEL_TOLERANCE = 0.03
V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
# GHZ with q[0] flipped afterwards: ideally '001' and '110', so a reversed key reads differently.
FLIPPED_GHZ = (
    V2 + "qreg q[3];\ncreg c[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\nx q[0];\nmeasure q -> c;\n"
)
IDEAL = {BELL: {"00", "11"}, FLIPPED_GHZ: {"001", "110"}}


def parsed(qasm: str) -> ParsedCircuit:
    return parse_circuit(qasm, CircuitLimits(262_144, 127, 1024, 1_000_000, 100_000))


def brisbane() -> Target:
    return supplier("ibm_quantum").target("ibm_brisbane")


def tvd(p: dict[str, int], q: dict[str, int]) -> float:
    """Total variation distance between two count dictionaries, as distributions."""
    n_p, n_q = sum(p.values()), sum(q.values())
    return 0.5 * sum(abs(p.get(k, 0) / n_p - q.get(k, 0) / n_q) for k in set(p) | set(q))


def error_weight(counts: dict[str, int], ideal: set[str]) -> float:
    return sum(v for k, v in counts.items() if k not in ideal) / sum(counts.values())


@pytest.fixture(scope="module")
def fake_brisbane() -> Any:
    """The SDK's own FakeBrisbane, made here (not the adapter's cached one)."""
    from qiskit_ibm_runtime.fake_provider import FakeBrisbane

    return FakeBrisbane()


def local_mode(
    backend: Any, circuit: ParsedCircuit, shots: int
) -> tuple[dict[str, int], list[int]]:
    """Counts of qiskit-ibm-runtime's local mode, seeded, and the physical qubits measured."""
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import SamplerV2

    pass_manager = generate_preset_pass_manager(
        optimization_level=1, target=backend.target, seed_transpiler=0
    )
    isa = pass_manager.run(circuit.circuit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # SamplerV2's own, since 0.50.0
        sampler = SamplerV2(mode=backend)
    sampler.options.simulator.seed_simulator = 1234
    result = sampler.run([isa], shots=shots).result()
    physical = sorted(isa.layout.final_index_layout()[: circuit.num_qubits])
    return sampler_counts(result), physical


@pytest.mark.parametrize("qasm", [BELL, FLIPPED_GHZ], ids=["bell", "flipped-ghz"])
def test_emulated_brisbane_matches_the_sdks_local_mode_within_sampling_noise(
    qasm: str, fake_brisbane: Any
) -> None:
    # given
    circuit = parsed(qasm)
    theirs, their_qubits = local_mode(fake_brisbane, circuit, SHOTS)

    # when
    ours = IBMQuantum(Settings()).emulate(brisbane(), circuit, SHOTS)

    # then
    assert sorted(ours.details["physical_qubits"]) == their_qubits
    assert sum(ours.counts.values()) == SHOTS
    assert tvd(ours.counts, theirs) < TVD_BOUND, (ours.counts, theirs)
    ideal = IDEAL[qasm]
    assert error_weight(theirs, ideal) > 0.0  # the reference is noisy: so must we be
    assert abs(error_weight(ours.counts, ideal) - error_weight(theirs, ideal)) < (
        NOISE_LEVEL_TOLERANCE
    )


def test_emulated_counts_put_clbit_0_rightmost() -> None:
    # given: only q[0] flipped, measured into c[0]
    circuit = parsed(V2 + "qreg q[2];\ncreg c[2];\nx q[0];\nmeasure q -> c;\n")

    # when
    counts = IBMQuantum(Settings()).emulate(brisbane(), circuit, 1000).counts

    # then
    assert max(counts, key=counts.__getitem__) == "01"


def test_emulated_counts_of_two_registers_put_the_last_declared_leftmost() -> None:
    # given: a[0] = 1 and b = (b1, b0) = (1, 0)
    circuit = parsed(
        V2 + "qreg q[3];\ncreg a[1];\ncreg b[2];\nx q[0];\nx q[2];\n"
        "measure q[0] -> a[0];\nmeasure q[1] -> b[0];\nmeasure q[2] -> b[1];\n"
    )

    # when
    counts = IBMQuantum(Settings()).emulate(brisbane(), circuit, 1000).counts

    # then
    assert max(counts, key=counts.__getitem__) == "10 1"


def test_an_emulated_circuit_without_measurements_is_measured_on_every_qubit() -> None:
    # given
    circuit = parsed(V2 + "qreg q[3];\nx q[0];\nx q[1];\n")

    # when
    counts = IBMQuantum(Settings()).emulate(brisbane(), circuit, 1000).counts

    # then
    assert max(counts, key=counts.__getitem__) == "011"
