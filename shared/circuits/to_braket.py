"""A qiskit circuit as an AWS Braket OpenQASM 3 program, and Braket's counts back in qiskit's order.

The program (`to_braket`) is what the cloud path sends and the emulation runs on the SDK's local
simulator, so the emulation proves the translation. It is written thus:

    OPENQASM 3.0;
    // qcos-registers: 0-1 2
    qubit[3] q;
    bit[3] b;
    x q[0];
    ...
    b[0] = measure q[2];

- One qubit register `q` and one bit register `b` (Braket reads one classical register); bit i of
  `b` is the circuit's clbit i, in qiskit's global clbit order.
- Gates are translated to a set every gate-model Braket device accepts (`BRAKET_GATES`: IonQ
  has no `cz` or `phaseshift`, Rigetti no `v`), by qiskit's transpiler at optimisation level 1
  without a coupling map, so the qubits keep their indices. The global phase is dropped: counts
  do not see it.
- Measurements are final, so they are written last, one per measured clbit. Mid-circuit
  measurement, reset, delay, classical control flow and free parameters are refused with
  `CircuitDoesNotFit`.
- The comment `// qcos-registers:` lists the circuit's classical registers in declaration
  order, each as the global clbit indices it holds (ranges `a-b`, `_` for an empty register).

Counts come back through the program itself: Braket echoes the program it ran in every result
(`additionalMetadata.action` of results.json; the SDK reads result types from that echo too), so
`counts_from_outcomes` rebuilds, from its measure statements and its register comment, a circuit
with the same clbits, registers and final measurements, and hands it to
`bitorder.counts_from_qubit_outcomes` with Braket's `measuredQubits`. Nothing needs storing
between submit and poll, and the order in which Braket lists the measured qubits does not matter.

qiskit is imported inside the functions; importing this module imports no SDK.
"""

from __future__ import annotations

import math
import queue
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shared.circuits import ParsedCircuit
from shared.circuits.bitorder import (
    MidCircuitMeasurement,
    clbit_sources,
    counts_from_qubit_outcomes,
    probabilities_to_counts,
    with_measurements,
)
from shared.errors import CircuitDoesNotFit, one_line

# qiskit name -> Braket OpenQASM name, for the gates every gate-model Braket device accepts.
BRAKET_GATES: dict[str, str] = {
    "h": "h",
    "x": "x",
    "y": "y",
    "z": "z",
    "s": "s",
    "sdg": "si",
    "t": "t",
    "tdg": "ti",
    "rx": "rx",
    "ry": "ry",
    "rz": "rz",
    "cx": "cnot",
    "swap": "swap",
}
REGISTERS_COMMENT = "// qcos-registers:"
CACHE_SIZE = 128

_QUBITS = re.compile(r"^qubit\[(\d+)\] q;$", re.MULTILINE)
_BITS = re.compile(r"^bit\[(\d+)\] b;$", re.MULTILINE)
_MEASURE = re.compile(r"^b\[(\d+)\] = measure q\[(\d+)\];$", re.MULTILINE)
_REGISTERS = re.compile(r"^" + re.escape(REGISTERS_COMMENT) + r"(.*)$", re.MULTILINE)
_SKIPPED = frozenset({"barrier"})
_REFUSED = {
    "reset": "reset",
    "delay": "delay",
}


@dataclass(frozen=True)
class BraketProgram:
    """An OpenQASM 3 program for Braket, and the circuit it was written from.

    `circuit` is the transpiled qiskit circuit with its final measurements (what
    `bitorder.counts_from_qubit_outcomes` needs); `measured_all` is True when the source
    measured nothing and every qubit was measured (`measure_all`), as on Aer.
    """

    source: str
    circuit: Any
    num_qubits: int
    measured_all: bool


def to_braket(parsed: ParsedCircuit) -> BraketProgram:
    """`parsed` as a Braket program, cached by the source's hash. Raises `CircuitDoesNotFit`
    for what Braket cannot run (module docstring)."""
    with _cache_lock:
        cached = _cache.get(parsed.qasm_hash)
        if cached is not None:
            _cache.move_to_end(parsed.qasm_hash)
            return cached
    program = circuit_to_braket(parsed.circuit)
    with _cache_lock:
        _cache[parsed.qasm_hash] = program
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return program


def circuit_to_braket(circuit: Any) -> BraketProgram:
    """A qiskit `QuantumCircuit` as a Braket program (uncached; see `to_braket`)."""
    measured, measured_all = with_measurements(circuit)
    _refuse_unsupported(measured)
    try:
        with _pass_manager() as manager:
            transpiled = manager.run(measured)
    except Exception as exc:
        from qiskit.exceptions import QiskitError

        if not isinstance(exc, QiskitError):
            raise
        reason = one_line(getattr(exc, "message", None) or str(exc), 200)
        raise CircuitDoesNotFit(
            f"The circuit cannot be translated to AWS Braket's gates: {reason}"
        ) from None
    if transpiled.num_qubits != measured.num_qubits or transpiled.num_clbits != (
        measured.num_clbits
    ):  # a pass that moved qubits would make every count wrong: never let it through
        raise RuntimeError("the translation to Braket changed the circuit's qubits or clbits")
    return BraketProgram(
        source=_write(transpiled),
        circuit=transpiled,
        num_qubits=int(transpiled.num_qubits),
        measured_all=measured_all,
    )


def counts_from_outcomes(
    outcomes: Mapping[str, int], measured_qubits: Sequence[int], source: str
) -> dict[str, int]:
    """Counts in qiskit's convention from Braket's: `outcomes` keyed by strings whose character
    i is the outcome of `measured_qubits[i]`, for the program `source` that `to_braket` wrote
    (as Braket echoes it). Raises `ValueError` when `source` is not such a program or the
    outcomes do not match `measured_qubits`."""
    width = len(measured_qubits)
    for outcome in outcomes:
        if len(outcome) != width or not set(outcome) <= {"0", "1"}:
            raise ValueError(f"an outcome does not match the {width} measured qubits")
    return counts_from_qubit_outcomes(outcomes, list(measured_qubits), layout_circuit(source))


def counts_from_results(results: Mapping[str, Any]) -> dict[str, int]:
    """Counts in qiskit's convention from a Braket results.json (GateModelTaskResult), read
    through the program it echoes. `measurements` (a row of 0/1 per shot) are counted;
    `measurementProbabilities` become counts that sum to the task's shots (largest remainders,
    so the same file always gives the same counts). Raises `ValueError` on a file that lacks
    what is needed."""
    measured_qubits = results.get("measuredQubits")
    if not measured_qubits:
        raise ValueError("the results name no measured qubits")
    action = (results.get("additionalMetadata") or {}).get("action") or {}
    source = action.get("source")
    if not isinstance(source, str):
        raise ValueError("the results do not echo the OpenQASM program that ran")
    measurements = results.get("measurements")
    probabilities = results.get("measurementProbabilities")
    if measurements:
        outcomes = Counter("".join(str(int(bit)) for bit in shot) for shot in measurements)
    elif probabilities:
        shots = int((results.get("taskMetadata") or {}).get("shots") or 0)
        if shots < 1:
            raise ValueError("the results give probabilities but no shot count")
        outcomes = Counter(probabilities_to_counts(probabilities, shots))
    else:
        raise ValueError("the results hold neither measurements nor measurementProbabilities")
    return counts_from_outcomes(outcomes, [int(q) for q in measured_qubits], source)


def layout_circuit(source: str) -> Any:
    """The classical side of the circuit `source` was written from: its qubits, its clbits in
    their registers, and its final measurements (enough for `bitorder`). Raises `ValueError`
    when `source` lacks the declarations or the register comment `to_braket` writes."""
    from qiskit.circuit import ClassicalRegister, Clbit, QuantumCircuit
    from qiskit.circuit.exceptions import CircuitError

    qubits, bits, registers = (
        _QUBITS.search(source),
        _BITS.search(source),
        _REGISTERS.search(source),
    )
    if qubits is None or bits is None or registers is None:
        raise ValueError("the program is not one this gateway wrote (no register layout)")
    clbits = [Clbit() for _ in range(int(bits.group(1)))]
    circuit = QuantumCircuit(int(qubits.group(1)))
    circuit.add_bits(clbits)
    for spec in registers.group(1).split():
        indices = _read_indices(spec)
        if any(i >= len(clbits) for i in indices):
            raise ValueError("the program's register layout names a clbit it does not declare")
        try:
            circuit.add_register(ClassicalRegister(bits=[clbits[i] for i in indices]))
        except CircuitError as exc:  # a clbit listed twice
            raise ValueError(f"the program's register layout is malformed: {exc}") from None
    for measure in _MEASURE.finditer(source):
        clbit, qubit = int(measure.group(1)), int(measure.group(2))
        if clbit >= len(clbits) or qubit >= circuit.num_qubits:
            raise ValueError("the program measures outside its registers")
        circuit.measure(qubit, clbits[clbit])
    return circuit


# --- writing the program -------------------------------------------------------------------


def _refuse_unsupported(circuit: Any) -> None:
    """`CircuitDoesNotFit` for what no Braket program can express (checked before transpiling,
    so the reason names the user's operation, not what the transpiler made of it)."""
    if circuit.parameters:
        raise CircuitDoesNotFit("AWS Braket programs are run with every parameter bound")
    for inst in circuit.data:
        operation = inst.operation
        if getattr(operation, "blocks", ()):
            raise CircuitDoesNotFit(f"AWS Braket runs no classical control flow ({operation.name})")
        if operation.name in _REFUSED:
            raise CircuitDoesNotFit(f"AWS Braket runs no {_REFUSED[operation.name]}")
    try:
        clbit_sources(circuit)
    except MidCircuitMeasurement as exc:
        raise CircuitDoesNotFit(
            f"AWS Braket measures only at the end of a circuit: {exc}"
        ) from None


def _write(circuit: Any) -> str:
    sources = clbit_sources(circuit)
    lines = [
        "OPENQASM 3.0;",
        f"{REGISTERS_COMMENT} {_register_layout(circuit)}".rstrip(),
        f"qubit[{circuit.num_qubits}] q;",
        f"bit[{circuit.num_clbits}] b;",
    ]
    for inst in circuit.data:
        operation = inst.operation
        name = operation.name
        if name in _SKIPPED or name == "measure":
            continue
        braket_name = BRAKET_GATES.get(name)
        if braket_name is None:
            raise CircuitDoesNotFit(f"The operation {name!r} has no AWS Braket equivalent")
        qubits = ", ".join(f"q[{circuit.find_bit(q).index}]" for q in inst.qubits)
        if operation.params:
            angles = ", ".join(_angle(p) for p in operation.params)
            lines.append(f"{braket_name}({angles}) {qubits};")
        else:
            lines.append(f"{braket_name} {qubits};")
    lines += [f"b[{clbit}] = measure q[{qubit}];" for clbit, qubit in sorted(sources.items())]
    return "\n".join(lines) + "\n"


def _angle(value: Any) -> str:
    try:
        angle = float(value)
    except (TypeError, ValueError):
        raise CircuitDoesNotFit("AWS Braket programs are run with every parameter bound") from None
    if not math.isfinite(angle):
        raise CircuitDoesNotFit("The circuit has an angle that is not a finite number")
    return repr(angle)


def _register_layout(circuit: Any) -> str:
    """Each classical register, in declaration order, as the global clbit indices it holds."""
    specs = []
    for register in circuit.cregs:
        indices = [circuit.find_bit(bit).index for bit in register]
        specs.append(_write_indices(indices))
    return " ".join(specs)


def _write_indices(indices: list[int]) -> str:
    if not indices:
        return "_"
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _read_indices(spec: str) -> list[int]:
    if spec == "_":
        return []
    indices: list[int] = []
    for run in spec.split(","):
        first, _, last = run.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError("the program's register layout is malformed")
        indices.extend(range(int(first), int(last or first) + 1))
    return indices


# --- caches --------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: OrderedDict[str, BraketProgram] = OrderedDict()
# A qiskit pass manager is not safe to share between threads: one per concurrent caller.
_pass_managers: queue.SimpleQueue[Any] = queue.SimpleQueue()


@contextmanager
def _pass_manager() -> Iterator[Any]:
    try:
        manager = _pass_managers.get_nowait()
    except queue.Empty:
        from qiskit.transpiler import generate_preset_pass_manager

        manager = generate_preset_pass_manager(
            optimization_level=1, basis_gates=list(BRAKET_GATES), seed_transpiler=0
        )
    try:
        yield manager
    finally:
        _pass_managers.put(manager)
