"""`shared.circuits.shape`: the shape of a parsed circuit that a simulation's cost depends on
(operations by kind, and how entangled it can get along its qubits' order)."""

from __future__ import annotations

from shared.circuits import CircuitLimits, parse_circuit
from shared.circuits.shape import Shape
from shared.config import Settings

V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
LIMITS = CircuitLimits.from_limits(Settings.from_env({}).limits, max_qubits=127)


def shape(body: str, qubits: int) -> Shape:
    qasm = V2 + f"qreg q[{qubits}];\ncreg c[{qubits}];\n{body}"
    return parse_circuit(qasm, LIMITS).shape


def brickwork(qubits: int, layers: int) -> Shape:
    """Layers of rotations and CX on alternating neighbour pairs: entanglement grows per layer."""
    body = "".join(
        "".join(f"ry(0.3) q[{i}];\n" for i in range(qubits))
        + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(layer % 2, qubits - 1, 2))
        for layer in range(layers)
    )
    return shape(body, qubits)


def test_a_ghz_circuit_is_one_bond_bit_wide_whatever_its_size() -> None:
    # given GHZ states of 3 and 20 qubits: each cut is crossed by one CX
    for n in (3, 20):
        chain = "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
        # when / then
        assert shape(f"h q[0];\n{chain}measure q -> c;\n", n) == Shape(
            one_qubit=1, multi_qubit=n - 1, measurements=n, bond_bits=1
        )


def test_barriers_cost_nothing_however_many_there_are() -> None:
    # given a Bell circuit, and the same with twenty barriers (as exporters write them)
    plain = shape("h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n", 2)
    barriers = "barrier q;\n" * 20
    with_barriers = shape(f"h q[0];\n{barriers}cx q[0],q[1];\n{barriers}measure q -> c;\n", 2)
    # then both have one gate of each kind and two measurements
    assert with_barriers == plain == Shape(1, 1, 2, bond_bits=1)


def test_entanglement_grows_with_each_brickwork_layer_up_to_half_the_qubits() -> None:
    # given brickwork circuits of 8 qubits, 1 to 11 layers deep
    bonds = [brickwork(8, layers).bond_bits for layers in range(1, 12)]
    # then the bond never shrinks as layers are added, starts at 1, and stops at 8 / 2
    assert bonds == sorted(bonds)
    assert bonds[0] == 1 and bonds[-1] == 4
    assert max(bonds) <= 4


def test_a_long_range_gate_crosses_every_cut_between_its_qubits() -> None:
    # given two CX between the ends of a chain of 6: both cross each cut
    # then the middle cut (3 | 3) holds both; the end cuts (1 | 5) hold one qubit's worth
    assert shape("cx q[0],q[5];\ncx q[5],q[0];\n", 6).bond_bits == 2


def test_gates_between_neighbours_that_never_cross_a_cut_add_no_bond() -> None:
    # given CX only inside the pairs (0,1) and (2,3): the cut between 1 and 2 is never crossed
    pairs = shape("cx q[0],q[1];\ncx q[2],q[3];\ncx q[1],q[0];\n", 4)
    # then each side is at most one qubit's entanglement
    assert pairs.bond_bits == 1


def test_a_defined_gate_is_counted_as_its_expanded_operations_in_the_top_levels_mix() -> None:
    # given a two-qubit gate made of four operations, applied once, then two measurements
    parsed = parse_circuit(
        V2 + "qreg q[2];\ncreg c[2];\ngate g a,b { cx a,b; cx b,a; cx a,b; h a; }\n"
        "g q[0],q[1];\nmeasure q -> c;\n",
        LIMITS,
    )
    counted = parsed.shape
    # then the kinds add up to the circuit's expanded operations, not its top-level lines
    assert parsed.operations == 6
    assert counted.one_qubit + counted.multi_qubit + counted.measurements == parsed.operations
    assert counted.multi_qubit > 1


def test_a_circuit_without_gates_or_on_one_qubit_has_no_bond() -> None:
    assert shape("", 3) == Shape(one_qubit=0, multi_qubit=0, measurements=0, bond_bits=0)
    assert shape("h q[0];\nx q[0];\nmeasure q[0] -> c[0];\n", 1) == Shape(
        one_qubit=2, multi_qubit=0, measurements=1, bond_bits=0
    )
