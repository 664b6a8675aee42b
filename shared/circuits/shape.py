"""The shape of a parsed circuit that a simulation's cost depends on, read once per circuit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_FREE = frozenset({"barrier", "delay"})


@dataclass(frozen=True)
class Shape:
    """Operations by kind, expanded as `ParsedCircuit.operations` counts them, and how
    entangled the circuit can get along its qubits' order.

    `bond_bits` bounds the entanglement across any cut of the qubits in their order (a chain
    `0 | 1 ... n-1`, `0 1 | 2 ... n-1`, ...): each multi-qubit gate across a cut can at most
    double the Schmidt rank there, and no cut holds more than its smaller side's qubits. A matrix
    product state's bond dimension is at most `2 ** bond_bits`: 1 for GHZ, since each cut is
    crossed by one CX; grows with each layer of a brickwork circuit.
    """

    one_qubit: int
    multi_qubit: int
    measurements: int
    bond_bits: int


def shape_of(circuit: Any, operations: int) -> Shape:
    """The `Shape` of `circuit`, whose operations expanded number `operations`: the top-level
    instructions are counted by kind, then scaled up to `operations` (gate definitions and loop
    bodies keep the top level's mix)."""
    n = int(circuit.num_qubits)
    one = multi = measured = free = 0
    starts = [0] * max(n, 1)  # gates whose span starts (+1) and ends (-1) at each cut
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in _FREE:  # costs nothing, but `operations` counts it
            free += 1
            continue
        if name == "measure":
            measured += 1
            continue
        indices = [circuit.find_bit(q).index for q in instruction.qubits]
        if len(indices) <= 1:
            one += 1
            continue
        multi += 1
        starts[min(indices)] += 1
        starts[max(indices)] -= 1
    top = one + multi + measured + free
    scale = operations / top if top and operations > top else 1.0
    bond, crossing = 0, 0
    for cut in range(n - 1):  # between qubits cut and cut + 1
        crossing += starts[cut]
        bond = max(bond, min(round(crossing * scale), cut + 1, n - cut - 1))
    return Shape(
        one_qubit=round(one * scale),
        multi_qubit=round(multi * scale),
        measurements=round(measured * scale),
        bond_bits=bond,
    )
