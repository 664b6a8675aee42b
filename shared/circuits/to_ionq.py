"""A qiskit circuit as IonQ's `ionq.circuit.v1` JSON (the `qis` gate set), and IonQ's histogram
back in qiskit's counts convention.

IonQ's JSON has no measurements: IonQ measures every qubit once, at the end, and answers with a
histogram of probabilities over integers whose bit i is qubit i. So:

- The circuit (measured as `bitorder.with_measurements` does) is rewritten by qiskit's
  transpiler (optimisation level 0: IonQ optimises the circuit itself; no coupling map, so every
  qubit keeps its index) into the gates IonQ's JSON names (azure.quantum.qiskit's IonQ backend
  uses the same names), in the shape Azure's IonQ documentation shows: `x y z h s si t ti v vi
  rx ry rz` with `{"gate", "target"}` (plus `rotation`, in radians), `cnot` with
  `{"control", "target"}`, and `swap` with `{"targets": [a, b]}`. The global phase is dropped:
  no measurement sees it, and neither does a reset of a qubit nothing has touched yet, which
  is dropped too.
- A circuit that uses a qubit after measuring it, measures one twice, resets a qubit it has
  used, or has classical control flow is refused (`CircuitDoesNotFit`): IonQ cannot run it.
- The histogram is read through the circuit's final measurements (`bitorder.clbit_sources`):
  clbit c takes bit `sources[c]` of the integer, and the key is `bitorder.qiskit_key`'s.
- Probabilities become integer counts that sum to `shots` (`bitorder.probabilities_to_counts`,
  largest remainders): the same histogram always gives the same counts. A QPU's histogram is
  its measured frequencies, which this turns back into its counts; the simulator's is exact
  probabilities, which this rounds instead of sampling.

qiskit is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.circuits.bitorder import (
    MidCircuitMeasurement,
    clbit_sources,
    probabilities_to_counts,
    qiskit_key,
    with_measurements,
)
from shared.errors import CircuitDoesNotFit, one_line

# qiskit's name -> IonQ's, for the gates written {"gate", "target"} (and "rotation").
_SINGLE_QUBIT = {
    "x": "x",
    "y": "y",
    "z": "z",
    "h": "h",
    "s": "s",
    "sdg": "si",
    "t": "t",
    "tdg": "ti",
    "sx": "v",
    "sxdg": "vi",
}
_ROTATIONS = frozenset({"rx", "ry", "rz"})
# The qiskit gates IonQ's JSON has: what a circuit is transpiled to.
BASIS_GATES = (*_SINGLE_QUBIT, *sorted(_ROTATIONS), "cx", "swap")
_DROPPED = frozenset({"barrier", "id", "measure"})
# The histogram's probabilities may add up to 1 within this (IonQ rounds them).


@dataclass(frozen=True)
class IonQProgram:
    """`body` is the `ionq.circuit.v1` JSON; `circuit` the transpiled qiskit circuit it was
    written from, with the final measurements that map IonQ's histogram back (`sources`:
    {clbit: qubit})."""

    body: dict[str, Any]
    circuit: Any
    sources: dict[int, int]


def to_ionq(circuit: Any) -> IonQProgram:
    """`circuit` as IonQ's JSON. Raises `CircuitDoesNotFit` when IonQ cannot run it: a
    mid-circuit measurement, a reset, classical control flow, or an operation with no IonQ
    equivalent."""
    circuit, _ = with_measurements(circuit)
    _final_measurements(circuit)  # before transpiling: refuse early and cheaply
    transpiled = _transpile(circuit)
    sources = _final_measurements(transpiled)
    index = {qubit: i for i, qubit in enumerate(transpiled.qubits)}
    gates = []
    touched: set[int] = set()
    for instruction in transpiled.data:
        operation = instruction.operation
        name = operation.name
        qubits = [index[q] for q in instruction.qubits]
        if name in _DROPPED or (name == "reset" and not touched.intersection(qubits)):
            continue
        gates.append(_gate(name, qubits, operation.params))
        touched.update(qubits)
    body = {"gateset": "qis", "qubits": int(transpiled.num_qubits), "circuit": gates}
    return IonQProgram(body=body, circuit=transpiled, sources=sources)


def _final_measurements(circuit: Any) -> dict[int, int]:
    try:
        return clbit_sources(circuit)
    except MidCircuitMeasurement as exc:
        raise CircuitDoesNotFit(
            f"IonQ measures every qubit once, at the end of the circuit: {exc}"
        ) from None


def _transpile(circuit: Any) -> Any:
    from qiskit.transpiler import generate_preset_pass_manager

    # A pass manager is not safe to share between threads, and one costs about 2 ms to make.
    manager = generate_preset_pass_manager(
        optimization_level=0, basis_gates=[*BASIS_GATES, "id", "reset"]
    )
    try:
        return manager.run(circuit)
    except Exception as exc:  # an operation with no decomposition into IonQ's gates
        raise CircuitDoesNotFit(
            f"The circuit cannot be written in IonQ's gates: {one_line(str(exc), 200)}"
        ) from None


def _gate(name: str, qubits: list[int], params: list[Any]) -> dict[str, Any]:
    if name in _SINGLE_QUBIT:
        return {"gate": _SINGLE_QUBIT[name], "target": qubits[0]}
    if name in _ROTATIONS:
        try:
            angle = float(params[0])
        except (TypeError, ValueError):
            raise CircuitDoesNotFit(f"IonQ needs a numeric angle for {name}") from None
        return {"gate": name, "target": qubits[0], "rotation": angle}
    if name == "cx":
        return {"gate": "cnot", "control": qubits[0], "target": qubits[1]}
    if name == "swap":
        return {"gate": "swap", "targets": qubits}
    if name == "reset":
        raise CircuitDoesNotFit("IonQ cannot reset a qubit during a circuit")
    raise CircuitDoesNotFit(f"IonQ has no equivalent of the operation {name!r}")


def counts_from_histogram(
    histogram: Mapping[str, float], shots: int, circuit: Any
) -> dict[str, int]:
    """IonQ's histogram ({"5": 0.5, ...}: integer outcome, bit i = qubit i -> probability) as
    counts in qiskit's convention, summing to `shots`. `circuit` is the one sent, with its
    final measurements. Raises `ValueError` for a histogram that is not one."""
    sources = clbit_sources(circuit)
    probabilities: dict[str, float] = {}
    for raw, probability in histogram.items():
        outcome = int(raw)
        if outcome < 0:
            raise ValueError(f"negative outcome {raw!r} in the histogram")
        values = [0] * circuit.num_clbits
        for clbit, qubit in sources.items():
            values[clbit] = (outcome >> qubit) & 1
        key = qiskit_key(values, circuit)
        probabilities[key] = probabilities.get(key, 0.0) + float(probability)
    return probabilities_to_counts(probabilities, shots)
