"""Bit order: one convention for counts, whatever the supplier returns.

The gateway's counts follow qiskit's `Result.get_counts()`: one key per outcome, registers in
reverse declaration order separated by a space, each register's bits highest index first. A
supplier that reports what each measured *qubit* gave (Braket: a string per shot over
`measured_qubits`; IonQ: an integer whose bit i is qubit i) is translated through the circuit's
final measurements (`clbit_sources`): clbit c takes the outcome of the qubit measured into it.
A clbit nothing was measured into reads 0, as on qiskit.

That convention only knows registers, and every supplier path formats counts from the circuit's
`cregs`: Aer's `get_counts` slices its memory by the register sizes in clbit order, `qiskit_key`
reads `cregs`, IBM's SamplerV2 returns one array per register. So `parse_circuit` ends with
`normalize_registers`, which makes `cregs` say exactly what the counts must: each clbit in one
register, the registers in declaration order and covering the clbits in that order. An OpenQASM 3
`bit b;` (a clbit in no register) becomes a register of its own, so it is reported as one more
space-separated group where it was declared; an alias (`let d = c[0:1];`, or the register the
importer makes for a condition on a slice, `if (c[0:1] == 2)`) and an empty register are not
storage and report nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import InvalidQasm

_SKIP = frozenset({"barrier"})
_PROBABILITY_TOLERANCE = 0.01


class MidCircuitMeasurement(ValueError):
    """A measured qubit is used again: the circuit needs mid-circuit measurement."""


def normalize_registers(circuit: Any) -> Any:
    """`circuit`, or a copy of it whose classical registers are what the counts report.

    The registers kept are those that hold bits of their own, in declaration order: a register
    that is empty, or whose bits an earlier register already holds (an alias), is left out,
    and a condition on it becomes the same test on its bits. Every clbit in no kept register (an
    OpenQASM 3 `bit b;`) is replaced by the one bit of a register of its own, named `clbit<i>`
    after its index (qiskit's importer does not keep the variable's name). The new bit takes the
    old one's place everywhere (instructions, control-flow blocks, conditions), so indices,
    `num_clbits`, depth and every operation stay as they were. The registers are all of the
    kind that owns its bits, as the declared ones are: qpy, which carries circuits to IBM,
    reloads owning registers before the others, which would reorder them.

    The circuit itself is returned when nothing changes (every OpenQASM 2 program without an
    empty register). Raises `InvalidQasm` where the registers cannot be reported in
    declaration order (the parsers build no such circuit).
    """
    from qiskit.circuit import ClassicalRegister

    kept: list[Any] = []
    dropped: list[Any] = []
    owned: set[Any] = set()
    for register in circuit.cregs:
        if len(register) == 0 or any(bit in owned for bit in register):
            dropped.append(register)
            continue
        kept.append(register)
        owned.update(register)
    old_clbits = list(circuit.clbits)
    if not dropped and len(owned) == len(old_clbits):
        if [bit for register in kept for bit in register] == old_clbits:
            return circuit
    position = {bit: i for i, bit in enumerate(old_clbits)}
    taken = {register.name for register in (*circuit.qregs, *circuit.cregs)}
    placed = [(position[register[0]], register) for register in kept]
    replacements: dict[Any, Any] = {}
    for bit in old_clbits:
        if bit in owned:
            continue
        name = f"clbit{position[bit]}"
        while name in taken:
            name += "_"
        taken.add(name)
        register = ClassicalRegister(1, name)
        replacements[bit] = register[0]
        placed.append((position[bit], register))
    registers = [register for _, register in sorted(placed, key=lambda pair: pair[0])]
    clbits = [replacements.get(bit, bit) for bit in old_clbits]
    if [bit for register in registers for bit in register] != clbits:
        raise InvalidQasm(
            "The circuit's classical registers do not hold its bits in declaration order;"
            " its counts cannot be reported"
        )
    return _with_bits(circuit, clbits, registers, replacements, dropped)


def _with_bits(
    circuit: Any,
    clbits: list[Any],
    registers: list[Any] | None,
    replacements: Mapping[Any, Any],
    dropped: Sequence[Any],
) -> Any:
    """`circuit` with its clbits swapped for `clbits` (and its classical registers for
    `registers`, unless None), control-flow operations rewritten by `_rewritten`."""
    from qiskit.circuit import QuantumCircuit

    # The instructions hold bits by index: swapping the bit list renames them in one step
    # (QuantumCircuit.from_circuit_data is the documented inverse of `_data`).
    data = circuit._data.copy()
    if registers is None:
        data.replace_bits(clbits=clbits)
    else:
        data.replace_bits(clbits=clbits, cregs=registers)
    out = QuantumCircuit.from_circuit_data(data, name=circuit.name, metadata=circuit.metadata)
    if not data.has_control_flow_op():
        return out
    rebuilt = out.copy_empty_like()
    for instruction in out.data:
        if getattr(instruction.operation, "blocks", ()):
            operation = _rewritten(instruction.operation, replacements, dropped)
            instruction = instruction.replace(operation=operation)
        rebuilt._append(instruction)
    return rebuilt


def _rewritten(operation: Any, replacements: Mapping[Any, Any], dropped: Sequence[Any]) -> Any:
    """A control-flow `operation` whose blocks and condition use the `replacements` of the old
    clbits, with a condition on a `dropped` register rewritten as a test of its bits."""
    blocks = []
    for block in operation.blocks:
        clbits = [replacements.get(bit, bit) for bit in block.clbits]
        blocks.append(_with_bits(block, clbits, None, replacements, dropped))
    rewritten = operation.replace_blocks(blocks)
    condition = getattr(operation, "condition", None)
    if isinstance(condition, tuple):
        subject, value = condition
        if subject in replacements:
            rewritten.condition = (replacements[subject], value)
        elif any(subject == register for register in dropped):
            rewritten.condition = _bits_equal(subject, int(value))
    for resource in (condition, getattr(operation, "target", None)):
        if resource is not None and not isinstance(resource, tuple):
            _refuse_reference(resource, replacements, dropped)
    return rewritten


def _refuse_reference(
    resource: Any, replacements: Mapping[Any, Any], dropped: Sequence[Any]
) -> None:
    """`InvalidQasm` when a switch target or a classical expression names a replaced clbit or a
    dropped register (the parsers write conditions as (register or bit, value) and no switch)."""
    from qiskit.circuit.classical import expr

    names = (
        [var.var for var in expr.iter_vars(resource)]
        if isinstance(resource, expr.Expr)
        else [resource]
    )
    for name in names:
        if name in replacements or any(name == register for register in dropped):
            raise InvalidQasm(
                "A switch or classical expression on a bit outside a register, or on an alias"
                " of a register, is not supported"
            )


def _bits_equal(register: Any, value: int) -> Any:
    """The classical expression "`register` == `value`", written on the register's bits (bit
    i is 2**i), and-ed as a balanced tree so a wide register nests only log2(width) deep."""
    from qiskit.circuit.classical import expr

    if not 0 <= value < 2 ** len(register):
        return expr.lift(False)
    terms = [
        expr.lift(bit) if value >> i & 1 else expr.logic_not(bit) for i, bit in enumerate(register)
    ]
    if not terms:
        return expr.lift(True)
    while len(terms) > 1:
        pairs = [expr.logic_and(terms[i], terms[i + 1]) for i in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(terms) - len(terms) % 2 :]
    return terms[0]


def with_measurements(circuit: Any) -> tuple[Any, bool]:
    """(`circuit`, False), or a copy measuring every qubit (`measure_all`) when it measures none."""
    if any(inst.operation.name == "measure" for inst in circuit.data):
        return circuit, False
    return circuit.measure_all(inplace=False), True


def clbit_sources(circuit: Any) -> dict[int, int]:
    """{clbit index: qubit index measured into it} for a circuit whose measurements are final.

    Raises `MidCircuitMeasurement` when a measured qubit is acted on afterwards, or a clbit is
    written twice, or the circuit has control flow (nothing outside qiskit can replay it).
    """
    sources: dict[int, int] = {}
    measured: set[int] = set()
    for inst in circuit.data:
        operation = inst.operation
        if operation.name in _SKIP:
            continue
        if getattr(operation, "blocks", ()):
            raise MidCircuitMeasurement("the circuit uses classical control flow")
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if operation.name == "measure":
            qubit, clbit = qubits[0], circuit.find_bit(inst.clbits[0]).index
            if qubit in measured or clbit in sources:
                raise MidCircuitMeasurement(f"qubit {qubit} or clbit {clbit} is measured twice")
            measured.add(qubit)
            sources[clbit] = qubit
            continue
        touched = measured.intersection(qubits)
        if touched:
            raise MidCircuitMeasurement(
                f"qubit {min(touched)} is used after it was measured ({operation.name})"
            )
    return sources


def qiskit_key(values: Sequence[int], circuit: Any) -> str:
    """The counts key for `values[i]` = the value of the circuit's clbit i."""
    groups = []
    for register in reversed(circuit.cregs):
        bits = (values[circuit.find_bit(register[j]).index] for j in reversed(range(register.size)))
        groups.append("".join(str(b) for b in bits))
    return " ".join(groups)


def counts_from_qubit_outcomes(
    outcomes: Mapping[str, int], measured_qubits: Sequence[int], circuit: Any
) -> dict[str, int]:
    """Translate counts keyed by per-qubit outcome strings into qiskit's convention.

    `outcomes` keys are strings whose character i is the outcome of `measured_qubits[i]`
    (Braket's `measurement_counts` with `measured_qubits`). `circuit` is the one that was
    translated for the supplier, with its final measurements.
    """
    sources = clbit_sources(circuit)
    position = {qubit: i for i, qubit in enumerate(measured_qubits)}
    missing = sorted(q for q in sources.values() if q not in position)
    if missing:
        raise ValueError(f"the supplier did not report measured qubits {missing}")
    merged: dict[str, int] = {}
    for outcome, count in outcomes.items():
        values = [0] * circuit.num_clbits
        for clbit, qubit in sources.items():
            values[clbit] = int(outcome[position[qubit]])
        key = qiskit_key(values, circuit)
        merged[key] = merged.get(key, 0) + int(count)
    return merged


def probabilities_to_counts(probabilities: Mapping[str, float], shots: int) -> dict[str, int]:
    """Integer counts summing to `shots`, by the largest-remainder method: floor(p * shots)
    each, then one more to each of the largest remainders (ties to the smaller key), so the
    same probabilities always give the same counts.
    Keys whose count is 0 are left out. Raises `ValueError` when the probabilities are
    negative, not finite, or do not add up to 1 (within 1%)."""
    if shots < 0:
        raise ValueError("shots must not be negative")
    if any(not math.isfinite(p) or p < 0 for p in probabilities.values()):
        raise ValueError("probabilities must be finite and not negative")
    total = math.fsum(probabilities.values())
    if abs(total - 1.0) > _PROBABILITY_TOLERANCE:
        raise ValueError(f"the probabilities add up to {total:.6g}, not 1")
    exact = {key: p / total * shots for key, p in probabilities.items()}
    counts = {key: math.floor(value) for key, value in exact.items()}
    left = shots - sum(counts.values())
    by_remainder = sorted(exact, key=lambda key: (-(exact[key] - counts[key]), key))
    for key in by_remainder[:left]:
        counts[key] += 1
    return {key: count for key, count in counts.items() if count}
