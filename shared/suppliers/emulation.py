"""Calibrated emulation: a device's native gates, connectivity and error rates, on Aer.

One mechanism for every noisy emulated target. A device is a qiskit `Target` with per-gate
errors and durations and per-qubit T1/T2: IBM's comes from the `fake_provider` backend of the
same name (a real calibration snapshot), every other QPU's from a data file under
`shared/suppliers/data/devices/` that names its source and date (`device_target`).

A run transpiles the circuit to the device (its gates and coupling map), keeps only the physical
qubits the circuit uses, and builds the noise model of that sub-device alone: gate errors
(depolarising plus thermal relaxation from T1/T2 and the gate's duration) and readout errors.
The whole-device model costs seconds per run on 127+ qubits; the restricted one gives the same
counts in milliseconds (docs/supplier-sdk-facts.md). Noise models are cached per (device,
qubits used) and transpiled circuits per (device, circuit hash).

Ideal simulator targets run on the local Aer simulator (`shared.suppliers.aer`), and syntax
checkers validate the circuit against the device and return all-zero counts, as the real ones do.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.circuits import ParsedCircuit
from shared.config import Limits
from shared.errors import one_line
from shared.suppliers import aer
from shared.suppliers.base import CircuitDoesNotFit, DeviceKind, EmulatedRun, Target

DATA_DIR = Path(__file__).parent / "data"
DEVICES_DIR = DATA_DIR / "devices"
_CACHE_SIZE = 128
# Gates that are frames, not pulses: no error, no duration.
_VIRTUAL_GATES = frozenset({"rz", "p", "u1", "id", "delay"})


@dataclass(frozen=True)
class DeviceData:
    """A QPU's published figures (medians applied to every qubit and pair)."""

    name: str
    source: str
    as_of: str
    num_qubits: int
    gates_1q: tuple[str, ...]
    gates_2q: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] | None  # None: all-to-all
    error_1q: float
    error_2q: float
    readout_error: float
    time_1q_s: float
    time_2q_s: float
    readout_time_s: float
    t1_s: float
    t2_s: float
    notes: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceData:
        edges = data.get("edges")
        return cls(
            name=str(data["name"]),
            source=str(data["source"]),
            as_of=str(data["as_of"]),
            num_qubits=int(data["num_qubits"]),
            gates_1q=tuple(data["gates_1q"]),
            gates_2q=tuple(data["gates_2q"]),
            edges=None if edges is None else tuple((int(a), int(b)) for a, b in edges),
            error_1q=float(data["error_1q"]),
            error_2q=float(data["error_2q"]),
            readout_error=float(data["readout_error"]),
            time_1q_s=float(data["time_1q_s"]),
            time_2q_s=float(data["time_2q_s"]),
            readout_time_s=float(data["readout_time_s"]),
            t1_s=float(data["t1_s"]),
            t2_s=float(data["t2_s"]),
            notes=str(data.get("notes", "")),
        )


@lru_cache(maxsize=64)
def load_device(file_name: str) -> DeviceData:
    """The device data file `file_name` (e.g. `ionq_aria_1.json`) from `DEVICES_DIR`."""
    path = (DEVICES_DIR / file_name).resolve()
    if path.parent != DEVICES_DIR.resolve():
        raise ValueError(f"not a device data file: {file_name}")
    return DeviceData.from_json(json.loads(path.read_text(encoding="utf-8")))


def device_target(data: DeviceData) -> Any:
    """A qiskit `Target` with `data`'s gates, coupling, errors, durations and T1/T2."""
    from qiskit.circuit import Measure, Parameter
    from qiskit.circuit.library import get_standard_gate_name_mapping
    from qiskit.transpiler import InstructionProperties, QubitProperties, Target

    gates = get_standard_gate_name_mapping()
    n = data.num_qubits
    target = Target(
        num_qubits=n,
        dt=None,
        qubit_properties=[QubitProperties(t1=data.t1_s, t2=data.t2_s) for _ in range(n)],
    )
    for name in data.gates_1q:
        virtual = name in _VIRTUAL_GATES
        props = InstructionProperties(
            error=0.0 if virtual else data.error_1q, duration=0.0 if virtual else data.time_1q_s
        )
        target.add_instruction(_gate(gates, name, Parameter), {(q,): props for q in range(n)})
    pairs = data.edges if data.edges is not None else _all_pairs(n)
    both_ways = {p for a, b in pairs for p in ((a, b), (b, a))}
    for name in data.gates_2q:
        props = InstructionProperties(error=data.error_2q, duration=data.time_2q_s)
        target.add_instruction(_gate(gates, name, Parameter), {pair: props for pair in both_ways})
    readout = InstructionProperties(error=data.readout_error, duration=data.readout_time_s)
    target.add_instruction(Measure(), {(q,): readout for q in range(n)})
    return target


def _gate(gates: dict[str, Any], name: str, parameter: Any) -> Any:
    gate = gates[name]
    if gate.params:  # a parameterised gate is added with free parameters
        gate = type(gate)(*(parameter(f"{name}_{i}") for i in range(len(gate.params))))
    return gate


def _all_pairs(n: int) -> tuple[tuple[int, int], ...]:
    return tuple((a, b) for a in range(n) for b in range(a + 1, n))


class NoisyDevice:
    """Runs circuits on one device's restricted noise model. Safe to share between threads."""

    def __init__(self, key: str, build_target: Callable[[], Any]) -> None:
        self.key = key
        self._build_target = build_target
        self._target: Any = None
        self._lock = threading.Lock()  # the target, the pass manager (not thread-safe)
        self._cache_lock = threading.Lock()
        self._transpiled: OrderedDict[str, tuple[Any, tuple[int, ...]]] = OrderedDict()
        self._noise: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._pass_manager: Any = None

    @property
    def target(self) -> Any:
        with self._lock:
            if self._target is None:
                self._target = self._build_target()
            return self._target

    def run(
        self, parsed: ParsedCircuit, shots: int, *, max_qubits: int, seed: int | None = None
    ) -> EmulatedRun:
        """Counts of `parsed` on this device's noise. Raises `CircuitDoesNotFit` when the
        circuit is wider than the device or uses more than `max_qubits` physical qubits."""
        started = time.perf_counter()
        compact, physical = self.transpile(parsed)
        if len(physical) > max_qubits:
            raise CircuitDoesNotFit(
                f"The emulation of {self.key} simulates at most {max_qubits} active qubits; "
                f"this circuit uses {len(physical)} after mapping to the device"
            )
        noise = self._noise_model(physical)
        from qiskit_aer import AerSimulator

        options: dict[str, Any] = {"shots": shots, "max_parallel_threads": 1}
        if seed is not None:
            options["seed_simulator"] = seed
        result = AerSimulator(noise_model=noise).run(compact, **options).result()
        if not result.success:
            raise CircuitDoesNotFit(one_line(str(result.status)))
        counts = {str(k): int(v) for k, v in result.get_counts().items()}
        method = str(result.results[0].metadata.get("method", "automatic"))
        return EmulatedRun(
            counts=counts,
            execution_time_ms=(time.perf_counter() - started) * 1000.0,
            method=f"aer {method}, noise of {self.key} restricted to qubits {list(physical)}",
            details={"physical_qubits": list(physical), "calibration": self.key},
        )

    def transpile(self, parsed: ParsedCircuit) -> tuple[Any, tuple[int, ...]]:
        """(the circuit on the device, compacted to its active qubits; those physical qubits)."""
        with self._cache_lock:
            hit = self._transpiled.get(parsed.qasm_hash)
            if hit is not None:
                self._transpiled.move_to_end(parsed.qasm_hash)
                return hit
        target = self.target
        if parsed.num_qubits > target.num_qubits:
            raise CircuitDoesNotFit(
                f"The circuit has {parsed.num_qubits} qubits; {self.key} has {target.num_qubits}"
            )
        circuit = parsed.circuit
        if not aer.has_measurement(circuit):
            circuit = circuit.measure_all(inplace=False)
        with self._lock:
            if self._pass_manager is None:
                from qiskit.transpiler import generate_preset_pass_manager

                self._pass_manager = generate_preset_pass_manager(
                    optimization_level=1, target=target, seed_transpiler=0
                )
            try:
                mapped = self._pass_manager.run(circuit)
            except Exception as exc:  # a gate with no route to the device's basis
                raise CircuitDoesNotFit(
                    f"The circuit cannot be mapped to {self.key}: {one_line(str(exc), 200)}"
                ) from None
        entry = _compact(mapped)
        with self._cache_lock:
            self._transpiled[parsed.qasm_hash] = entry
            while len(self._transpiled) > _CACHE_SIZE:
                self._transpiled.popitem(last=False)
        return entry

    def _noise_model(self, physical: tuple[int, ...]) -> Any:
        with self._cache_lock:
            model = self._noise.get(physical)
            if model is not None:
                self._noise.move_to_end(physical)
                return model
        model = noise_model_from_target(sub_target(self.target, physical))
        with self._cache_lock:
            self._noise[physical] = model
            while len(self._noise) > _CACHE_SIZE:
                self._noise.popitem(last=False)
        return model


def _compact(mapped: Any) -> tuple[Any, tuple[int, ...]]:
    """`mapped` without its idle qubits, and the physical indices of those it kept, in order."""
    from qiskit.converters import circuit_to_dag, dag_to_circuit

    dag = circuit_to_dag(mapped)
    idle = [w for w in dag.idle_wires() if w in dag.qubits]
    dag.remove_qubits(*idle)
    kept = tuple(mapped.find_bit(q).index for q in dag.qubits)
    return dag_to_circuit(dag), kept


def sub_target(target: Any, physical: tuple[int, ...]) -> Any:
    """`target` cut down to `physical` qubits, renumbered 0..k-1 in that order."""
    from qiskit.transpiler import Target

    index = {p: i for i, p in enumerate(physical)}
    qubit_props = target.qubit_properties
    sub = Target(
        num_qubits=len(physical),
        dt=target.dt,
        qubit_properties=[qubit_props[p] for p in physical] if qubit_props else None,
    )
    for name in target.operation_names:
        operation, props = target.operation_from_name(name), target[name]
        if not props or None in props:  # global instructions (control flow)
            sub.add_instruction(operation, name=name)
            continue
        kept = {
            tuple(index[q] for q in qargs): p
            for qargs, p in props.items()
            if all(q in index for q in qargs)
        }
        if kept:
            sub.add_instruction(operation, kept, name=name)
    return sub


def noise_model_from_target(target: Any) -> Any:
    """Aer's basic device noise (gate errors with thermal relaxation, readout) for `target`."""
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.noise.device import basic_device_gate_errors, basic_device_readout_errors

    model = NoiseModel(basis_gates=[n for n in target.operation_names if n != "measure"])
    for name, qubits, error in basic_device_gate_errors(target=target):
        model.add_quantum_error(error, name, qubits)
    for qubits, error in basic_device_readout_errors(target=target):
        model.add_readout_error(error, qubits)
    return model


_devices: dict[str, NoisyDevice] = {}
_devices_lock = threading.Lock()


def noisy_device(key: str, build_target: Callable[[], Any]) -> NoisyDevice:
    """The process's one `NoisyDevice` for `key` (built on first use)."""
    with _devices_lock:
        device = _devices.get(key)
        if device is None:
            device = _devices[key] = NoisyDevice(key, build_target)
        return device


def run_ideal(parsed: ParsedCircuit, shots: int, *, statevector_max_qubits: int) -> EmulatedRun:
    """A simulator target: the local Aer simulator, noiseless."""
    result = aer.run(parsed, shots, statevector_max_qubits=statevector_max_qubits)
    return EmulatedRun(
        counts=result.counts,
        execution_time_ms=result.execution_time_ms,
        method=f"aer {result.method}, ideal",
    )


def run_syntax_check(device: NoisyDevice, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
    """Validate `parsed` against the device (as a syntax checker does) and return zeros."""
    started = time.perf_counter()
    compact, _ = device.transpile(parsed)
    key = " ".join("0" * reg.size for reg in reversed(compact.cregs) if reg.size)
    return EmulatedRun(
        counts={key: shots},
        execution_time_ms=(time.perf_counter() - started) * 1000.0,
        method="syntax check: validated against the device, all-zero counts",
    )


def target_device(target: Target) -> NoisyDevice:
    """The calibrated device that stands in for a QPU, emulator or syntax-checker `target`:
    IBM's snapshot (`fake_<name>`) or the target's device data file."""
    calibration = target.calibration
    if calibration.startswith("fake_"):
        from shared.suppliers.ibm import fake_backend

        return noisy_device(calibration, lambda: fake_backend(calibration).target)
    if not calibration.endswith(".json"):
        raise ValueError(f"{target.name} has no calibration to emulate")
    return noisy_device(calibration, lambda: device_target(load_device(calibration)))


# The floor of a noisy emulated run on top of the simulation itself (mapping the circuit to the
# device, the noise model): bench/supplier_emulation.py measures 2.6 to 16 ms for a Bell pair.
NOISY_EMULATION_FLOOR_S = 0.005


def estimated_seconds(
    target: Target, parsed: ParsedCircuit, shots: int, *, limits: Limits
) -> float:
    """How long `emulate_target` takes to run `parsed` as `target` (the run alone, not a wait
    for it): what a submit answers and `/api/v2/network/estimate` says alike."""
    if target.kind is DeviceKind.SIMULATOR:
        ideal = aer.estimated_ns(
            parsed, shots, statevector_max_qubits=limits.statevector_max_qubits
        )
        return ideal / 1e9
    if target.kind is DeviceKind.SYNTAX_CHECKER:
        return NOISY_EMULATION_FLOOR_S
    return NOISY_EMULATION_FLOOR_S + aer.noisy_cost_ns(parsed, shots) / 1e9


def emulate_target(
    target: Target,
    parsed: ParsedCircuit,
    shots: int,
    *,
    limits: Limits,
) -> EmulatedRun:
    """Run `parsed` as `target` would, locally: ideal for simulators, zeros for syntax
    checkers, the restricted noise model for QPUs and emulators."""
    if target.kind is DeviceKind.SIMULATOR:
        return run_ideal(parsed, shots, statevector_max_qubits=limits.statevector_max_qubits)
    device = target_device(target)
    if target.kind is DeviceKind.SYNTAX_CHECKER:
        return run_syntax_check(device, parsed, shots)
    if target.kind is DeviceKind.ANALOG:
        raise CircuitDoesNotFit(f"{target.name} is not a gate-model device")
    return device.run(parsed, shots, max_qubits=limits.statevector_max_qubits)
