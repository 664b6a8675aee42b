"""Bit order: one convention for counts, whatever the supplier returns.

The gateway's counts follow qiskit's `Result.get_counts()`: one key per outcome, registers in
reverse declaration order separated by a space, each register's bits highest index first. A
supplier that reports what each measured *qubit* gave (Braket: a string per shot over
`measured_qubits`; IonQ: an integer whose bit i is qubit i) is translated through the circuit's
final measurements (`clbit_sources`): clbit c takes the outcome of the qubit measured into it.
A clbit nothing was measured into reads 0, as on qiskit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

_SKIP = frozenset({"barrier"})
_PROBABILITY_TOLERANCE = 0.01


class MidCircuitMeasurement(ValueError):
    """A measured qubit is used again: the circuit needs mid-circuit measurement."""


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
