"""Counts keys for every layout of classical bits: loose OpenQASM 3 bits (`bit b;`), several
registers, aliases, empty registers and partial measurement, through the local simulator and
the Braket and IonQ translations, against the exact distribution from qiskit's `Statevector`.

The expected key follows qiskit's `Result.get_counts()` (`shared.circuits.bitorder`): one group
per register in reverse declaration order, separated by spaces, each highest bit first. A loose
bit is a one-bit group where it was declared; an alias (`let`) and an empty register are no
storage and report nothing. The reference below builds keys from the group sizes written in each
case, not from the gateway's circuit, so it checks the convention rather than restating it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.circuits.bitorder import clbit_sources, normalize_registers, qiskit_key
from shared.circuits.parser import count_operations
from shared.circuits.to_braket import counts_from_outcomes, to_braket
from shared.circuits.to_ionq import counts_from_histogram, to_ionq
from shared.suppliers import aer

V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
V3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
SHOTS = 4000
# Frequencies of a seeded run against exact probabilities: 5 standard deviations at p = 0.5.
TOLERANCE = 0.04


@dataclass(frozen=True)
class Case:
    name: str
    qasm: str
    groups: tuple[int, ...]  # the sizes of the reported groups (clbits), in declaration order


CASES = [
    Case(
        "issue: a loose bit after an unmeasured register",
        V3 + "qubit[2] q;\nbit[2] c;\nbit b;\nx q[1];\nb = measure q[1];\n",
        (2, 1),
    ),
    Case(
        "a loose bit before a register",
        V3 + "qubit[2] q;\nbit b;\nbit[2] c;\nx q[1];\nb = measure q[1];\nc[0] = measure q[0];\n",
        (1, 2),
    ),
    Case(
        "loose bits only, entangled",
        V3 + "qubit[3] q;\nbit a;\nbit b;\nbit d;\nh q[0];\ncx q[0], q[1];\nx q[2];\n"
        "a = measure q[0];\nd = measure q[1];\nb = measure q[2];\n",
        (1, 1, 1),
    ),
    Case(
        "loose bits between registers, partial measurement",
        V3 + "qubit[4] q;\nbit[2] c;\nbit m;\nbit[3] d;\nbit w;\n"
        "h q[0];\ncx q[0], q[2];\nry(0.7) q[3];\nx q[1];\n"
        "c[1] = measure q[0];\nm = measure q[3];\nd[0] = measure q[1];\nd[2] = measure q[2];\n",
        (2, 1, 3, 1),
    ),
    Case(
        "bits declared with their measurement",
        V3 + "qubit[3] q;\nh q[0];\nx q[2];\nbit b = measure q[0];\nbit[2] c = measure q[1:2];\n",
        (1, 2),
    ),
    Case(
        "an alias of a register reports nothing",
        V3 + "qubit[3] q;\nbit[2] c;\nlet d = c[0:1];\nbit e;\nx q[1];\nh q[2];\n"
        "c = measure q[0:1];\ne = measure q[2];\n",
        (2, 1),
    ),
    Case(
        "registers only, OpenQASM 3",
        V3 + "qubit[3] q;\nbit[2] a;\nbit[3] b;\nh q[0];\ncx q[0], q[2];\nx q[1];\n"
        "a[1] = measure q[1];\nb[0] = measure q[2];\nb[2] = measure q[0];\n",
        (2, 3),
    ),
    Case(
        "several registers, partial measurement, OpenQASM 2",
        V2 + "qreg q[3];\ncreg a[2];\ncreg b[1];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nx q[2];\n"
        "measure q[0] -> c[1];\nmeasure q[2] -> a[0];\nmeasure q[1] -> b[0];\n",
        (2, 1, 2),
    ),
    Case(
        "a register never measured, OpenQASM 2",
        V2 + "qreg q[3];\ncreg c[3];\ncreg n[2];\nh q[1];\nrx(1.1) q[2];\nx q[0];\n"
        "measure q -> c;\n",
        (3, 2),
    ),
    Case(
        "an empty register reports nothing, OpenQASM 2",
        V2 + "qreg q[2];\ncreg e[0];\ncreg c[2];\nx q[0];\nh q[1];\nmeasure q -> c;\n",
        (2,),
    ),
]


def parsed(qasm: str) -> ParsedCircuit:
    bounds = CircuitLimits(
        max_qasm_bytes=262_144,
        max_qubits=40,
        max_clbits=1024,
        max_operations=1_000_000,
        max_depth=100_000,
    )
    return parse_circuit(qasm, bounds)


def qiskit_circuit(qasm: str) -> Any:
    """The circuit as qiskit's own importers read it, without the gateway."""
    import qiskit.qasm2
    import qiskit.qasm3

    if qasm.startswith("OPENQASM 3"):
        return qiskit.qasm3.loads(qasm)
    return qiskit.qasm2.loads(qasm, custom_instructions=qiskit.qasm2.LEGACY_CUSTOM_INSTRUCTIONS)


def exact_distribution(case: Case) -> dict[str, float]:
    """{key: probability} from qiskit's `Statevector` of the case's circuit (its measurements
    are all final), keys written from `case.groups`."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    circuit = qiskit_circuit(case.qasm)
    assert circuit.num_clbits == sum(case.groups)
    unitary = QuantumCircuit(circuit.qubits)
    sources: dict[int, int] = {}
    for instruction in circuit.data:
        if instruction.operation.name == "measure":
            qubit = circuit.find_bit(instruction.qubits[0]).index
            sources[circuit.find_bit(instruction.clbits[0]).index] = qubit
        else:
            unitary.append(instruction.operation, instruction.qubits)
    measured = sorted(set(sources.values()))
    probabilities = Statevector(unitary).probabilities_dict(qargs=measured)
    distribution: dict[str, float] = {}
    for outcome, probability in probabilities.items():
        if probability < 1e-12:
            continue
        # probabilities_dict writes qargs[0] rightmost.
        value = {qubit: int(outcome[-1 - i]) for i, qubit in enumerate(measured)}
        clbits = [value[sources[c]] if c in sources else 0 for c in range(circuit.num_clbits)]
        key = _key(clbits, case.groups)
        distribution[key] = distribution.get(key, 0.0) + probability
    return distribution


def _key(clbits: list[int], groups: tuple[int, ...]) -> str:
    """qiskit's key for clbit values `clbits`, the clbits taken in `groups` of consecutive
    indices (qiskit's importers number clbits in declaration order)."""
    parts, start = [], 0
    for size in groups:
        parts.append("".join(str(b) for b in reversed(clbits[start : start + size])))
        start += size
    return " ".join(reversed(parts))


def assert_matches(counts: dict[str, int], distribution: dict[str, float], shots: int) -> None:
    assert sum(counts.values()) == shots
    if len(distribution) == 1:
        assert counts == {next(iter(distribution)): shots}
        return
    assert set(counts) == set(distribution)
    for key, probability in distribution.items():
        assert abs(counts[key] / shots - probability) < TOLERANCE, (key, counts, distribution)


# --- the local simulator -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.parametrize("statevector_max_qubits", [24, 1], ids=["statevector", "mps"])
def test_aer_counts_match_qiskits_exact_distribution(
    case: Case, statevector_max_qubits: int
) -> None:
    # given a program with loose bits, several registers or partial measurement
    circuit = parsed(case.qasm)
    # when it runs on the gateway's simulator (a Clifford one on the stabilizer method; others
    # on statevector, or matrix product state when statevector is capped at one qubit)
    run = aer.run(circuit, SHOTS, statevector_max_qubits=statevector_max_qubits, seed=11)
    # then its counts are qiskit's exact distribution, keyed by the declared groups
    assert_matches(run.counts, exact_distribution(case), SHOTS)


def test_the_issues_loose_bit_is_reported_beside_the_register_it_was_not_measured_into() -> None:
    # given the program of the report: `c` never measured, loose `b` measured as 1
    circuit = parsed(CASES[0].qasm)
    # when it runs
    counts = aer.run(circuit, 10, statevector_max_qubits=24, seed=1).counts
    # then `c` reads 00 and `b` 1, last declared leftmost
    assert counts == {"1 00": 10}


@pytest.mark.parametrize(
    ("qasm", "key"),
    [
        # a condition on a slice: qiskit's importer makes a hidden alias register for it
        (
            V3 + "qubit[3] q;\nbit[2] c;\nbit b;\nx q[1];\nc = measure q[0:1];\n"
            "if (c[0:1] == 2) x q[2];\nb = measure q[2];\n",
            "1 10",
        ),
        # a condition on an alias declared with `let`, inside a loop
        (
            V3 + "qubit[3] q;\nbit[2] c;\nlet d = c[1:1];\nbit b;\nx q[1];\nc = measure q[0:1];\n"
            "for int i in [0:2] { if (d == 1) x q[2]; }\nb = measure q[2];\n",
            "1 10",
        ),
        # a loose bit in conditions, at the top and inside blocks
        (
            V3 + "qubit[2] q;\nbit b;\nbit[2] c;\nx q[0];\nb = measure q[0];\nif (b) x q[1];\n"
            "for int i in [0:2] { if (b) { x q[0]; } }\nc = measure q;\n",
            "10 1",
        ),
        # a condition on an empty register (always true for 0)
        (
            V2 + "qreg q[2];\ncreg e[0];\ncreg c[2];\nif (e==0) x q[1];\nmeasure q -> c;\n",
            "10",
        ),
    ],
    ids=["slice-condition", "alias-condition", "loose-bit-condition", "empty-register-condition"],
)
def test_conditions_on_aliases_and_loose_bits_keep_their_meaning(qasm: str, key: str) -> None:
    # given a deterministic program whose control flow reads an alias, a loose bit or an
    # empty register
    circuit = parsed(qasm)
    # when it runs on each method
    for limit in (24, 1):
        counts = aer.run(circuit, 20, statevector_max_qubits=limit, seed=3).counts
        # then the branch taken and the key are those of the program
        assert counts == {key: 20}


def test_the_circuit_has_one_register_per_reported_group_and_its_figures_hold() -> None:
    for case in CASES:
        # given the parsed circuit and qiskit's own reading of the same program
        circuit = parsed(case.qasm)
        raw = qiskit_circuit(case.qasm)
        registers = circuit.circuit.cregs
        # then every clbit is in exactly one register, the registers list the clbits in order
        assert [len(register) for register in registers] == list(case.groups), case.name
        bits = [bit for register in registers for bit in register]
        assert bits == list(circuit.circuit.clbits), case.name
        assert all(len(circuit.circuit.find_bit(b).registers) == 1 for b in bits), case.name
        # and the figures of the parsed circuit are those of the program
        assert circuit.num_clbits == raw.num_clbits == circuit.circuit.num_clbits
        assert circuit.depth == raw.depth() == circuit.circuit.depth()
        assert (circuit.operations, circuit.is_clifford) == count_operations(raw, 10**6)
        assert clbit_sources(circuit.circuit) == clbit_sources(raw)


def test_a_circuit_with_registers_only_is_kept_as_it_is() -> None:
    # given circuits in which every clbit is in one register, in order
    for case in CASES:
        raw = qiskit_circuit(case.qasm)
        loose = any(not raw.find_bit(b).registers for b in raw.clbits)
        if loose or len(raw.cregs) != len(case.groups):
            continue
        # then normalising them returns the very same circuit
        assert normalize_registers(raw) is raw, case.name


def test_loose_bits_get_register_names_no_other_register_has() -> None:
    # given a program whose registers take the names a loose bit's register would get
    qasm = V3 + "qubit[2] clbit1;\nbit[1] clbit0;\nbit b;\nx clbit1[0];\nb = measure clbit1[0];\n"
    circuit = parsed(qasm).circuit
    names = [register.name for register in (*circuit.qregs, *circuit.cregs)]
    # then the loose bit's register has a name of its own
    assert len(set(names)) == len(names)
    assert aer.run(parsed(qasm), 5, statevector_max_qubits=24).counts == {"1 0": 5}


def test_the_registers_survive_qpy_in_declaration_order() -> None:
    # given a loose bit declared before a register (qpy, which carries circuits to IBM, reloads
    # registers that own their bits before the others)
    import qiskit.qpy

    circuit = parsed(CASES[1].qasm).circuit
    # when the circuit goes through qpy and back
    buffer = io.BytesIO()
    qiskit.qpy.dump(circuit, buffer)
    buffer.seek(0)
    (loaded,) = qiskit.qpy.load(buffer)
    # then its registers, and so its keys, are in the same order
    assert [r.name for r in loaded.cregs] == [r.name for r in circuit.cregs]
    assert qiskit_key([1, 0, 0], loaded) == qiskit_key([1, 0, 0], circuit) == "00 1"


# --- the translations that read counts back through the final measurements ------------------


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_braket_outcomes_are_read_back_into_the_declared_groups(case: Case) -> None:
    # given the Braket program of the case, and each outcome of the exact distribution as
    # Braket reports it (one character per measured qubit)
    circuit = parsed(case.qasm)
    program = to_braket(circuit)
    sources = clbit_sources(program.circuit)
    measured = sorted(set(sources.values()))
    raw = qiskit_circuit(case.qasm)
    raw_sources = clbit_sources(raw)
    expected: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    for index in range(2 ** len(measured)):
        value = {qubit: index >> i & 1 for i, qubit in enumerate(measured)}
        outcome = "".join(str(value[q]) for q in measured)
        outcomes[outcome] = index + 1
        clbits = [value[raw_sources[c]] if c in raw_sources else 0 for c in range(raw.num_clbits)]
        key = _key(clbits, case.groups)
        expected[key] = expected.get(key, 0) + index + 1
    # when the counts are read back through the program text
    counts = counts_from_outcomes(outcomes, measured, program.source)
    # then each outcome lands in the declared groups
    assert counts == expected


@pytest.mark.parametrize("case", CASES[:5], ids=[case.name for case in CASES[:5]])
def test_braket_local_simulator_gives_the_same_keys_as_aer(case: Case) -> None:
    from shared.config import Settings
    from shared.suppliers.braket import Braket
    from shared.suppliers.catalog import supplier

    # given a program with loose bits
    circuit = parsed(case.qasm)
    # when it runs on the SDK's local simulator through the Braket program
    run = Braket(Settings()).emulate(supplier("braket").target("sv1"), circuit, SHOTS)
    # then its counts are qiskit's exact distribution in the declared groups
    assert_matches(run.counts, exact_distribution(case), SHOTS)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_ionq_histograms_are_read_back_into_the_declared_groups(case: Case) -> None:
    # given the IonQ program of the case and the exact distribution as IonQ's histogram
    # (outcome integers whose bit i is qubit i)
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    circuit = parsed(case.qasm)
    program = to_ionq(circuit.circuit)
    unitary = QuantumCircuit(program.circuit.num_qubits)
    for instruction in program.circuit.data:
        if instruction.operation.name not in ("measure", "barrier"):
            qubits = [program.circuit.find_bit(q).index for q in instruction.qubits]
            unitary.append(instruction.operation, qubits)
    probabilities = Statevector(unitary).probabilities()
    histogram = {str(i): float(p) for i, p in enumerate(probabilities) if p > 1e-12}
    # when it is read back
    counts = counts_from_histogram(histogram, SHOTS, program.circuit)
    # then it is the exact distribution, keyed by the declared groups
    assert_matches(counts, exact_distribution(case), SHOTS)
