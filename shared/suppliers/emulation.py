"""Calibrated emulation: a device's native gates, connectivity and error rates, on Aer.

One mechanism for every noisy emulated target. A device is a qiskit `Target` with per-gate
errors and durations and per-qubit T1/T2 (`shared.suppliers.devices`): IBM's comes from the
`fake_provider` backend of the same name (a real calibration snapshot), every other QPU's from a
data file under `shared/suppliers/data/devices/` that names its source and date.

A run transpiles the circuit to the device (its gates and coupling map), keeps only the physical
qubits the circuit uses, and builds the noise model of that sub-device alone: gate errors
(depolarising plus thermal relaxation from T1/T2 and the gate's duration) and readout errors.
The whole-device model costs seconds per run on 127+ qubits; the restricted one gives the same
counts in milliseconds (docs/supplier-sdk-facts.md). Noise models are cached per (device,
qubits used) and transpiled circuits per (device, circuit hash).

Ideal simulator targets run on the local Aer simulator (`shared.suppliers.aer`), and syntax
checkers validate the circuit against the device and return all-zero counts, as the real ones do.

`on_device` maps a circuit to the device (the emulation's own transpile: layout, routing,
basis) and reads, for the physical qubits it landed on:

- the estimated success probability, ESP = prod over gates (1 - gate error) x prod over
  measurements (1 - readout error): the chance that no error happens in a shot. It is the
  fidelity `best_fidelity` ranks by and `weighted_average` weights by.
- the duration of one shot: the critical path through the gates' durations (each qubit's
  clock advances by each gate it takes part in; a gate starts when all its qubits are free),
  which the price of a time-billed device (`shared.pricing`) is estimated from.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.circuits import ParsedCircuit
from shared.config import Limits
from shared.errors import CircuitDoesNotFit, one_line
from shared.suppliers import aer
from shared.suppliers.base import DeviceKind, EmulatedRun, Target
from shared.suppliers.devices import device_target, fake_backend, load_device

_CACHE_SIZE = 128
_NOT_GATES = frozenset({"barrier", "delay"})  # no error, no time of their own


class NoisyDevice:
    """Runs circuits on one device's restricted noise model. Safe to share between threads."""

    def __init__(self, key: str, build_target: Callable[[], Any]) -> None:
        self.key = key
        self._build_target = build_target
        self._target: Any = None
        self._lock = threading.Lock()  # the target, the pass manager (not thread-safe)
        self._cache_lock = threading.Lock()
        self._transpiled: OrderedDict[str, tuple[Any, tuple[int, ...]]] = OrderedDict()
        self._noise: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._pass_manager: Any = None

    @property
    def target(self) -> Any:
        with self._lock:
            if self._target is None:
                self._target = self._build_target()
            return self._target

    def run(
        self,
        parsed: ParsedCircuit,
        shots: int,
        *,
        plan: Callable[[int], Plan | None],
        seed: int | None = None,
    ) -> EmulatedRun:
        """Counts of `parsed` on this device's noise, run the way `plan(active qubits)` says
        (in parts, each reported, when every shot is a trajectory of its own). Raises
        `CircuitDoesNotFit` when the circuit is wider than the device or than any method runs."""
        started = time.perf_counter()
        compact, physical = self.transpile(parsed)
        chosen = plan(len(physical))
        if chosen is None:
            raise CircuitDoesNotFit(
                f"The emulation of {self.key} simulates at most {MAX_NOISY_QUBITS} active "
                f"qubits; this circuit uses {len(physical)} after mapping to the device"
            )
        noise = self._noise_model(physical, compact)
        from qiskit_aer import AerSimulator

        simulator = AerSimulator(noise_model=noise, method=chosen.method)

        def run_part(part_shots: int, part_seed: int | None) -> dict[str, int]:
            result = simulator.run(
                compact, shots=part_shots, seed_simulator=part_seed, max_parallel_threads=1
            ).result()
            if not result.success:
                raise CircuitDoesNotFit(one_line(str(result.status)))
            return {str(k): int(v) for k, v in result.get_counts().items()}

        parts = aer.progress_parts(
            chosen.method == DENSITY_MATRIX and parsed.final_measurements,
            chosen.seconds * 1e9,
            shots,
            chosen.setup_seconds * 1e9,
        )
        counts = aer.in_parts(run_part, shots, seed, parts)
        return EmulatedRun(
            counts=counts,
            execution_time_ms=(time.perf_counter() - started) * 1000.0,
            method=f"aer {chosen.method}, noise of {self.key} restricted to qubits "
            f"{list(physical)}",
            details={
                "physical_qubits": list(physical),
                "calibration": self.key,
                "estimated_seconds": round(chosen.seconds, 3),
            },
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

    def _noise_model(self, physical: tuple[int, ...], compact: Any = None) -> Any:
        """The noise of `physical` qubits, on the multi-qubit gates' qubit sets `compact` uses
        (all of them when None): noise on a pair no gate touches changes nothing, and each
        error costs Aer's every run about 10 ms to prepare (190 pairs of an all-to-all device
        of 20 qubits, against the 19 a GHZ chain uses)."""
        used = None if compact is None else _multi_qubit_sets(compact)
        key = (physical, used)
        with self._cache_lock:
            model = self._noise.get(key)
            if model is not None:
                self._noise.move_to_end(key)
                return model
        model = noise_model_from_target(sub_target(self.target, physical, used))
        with self._cache_lock:
            self._noise[key] = model
            while len(self._noise) > _CACHE_SIZE:
                self._noise.popitem(last=False)
        return model


def _compact(mapped: Any) -> tuple[Any, tuple[int, ...]]:
    """`mapped` without its idle qubits, and the physical indices of those it kept, in the
    order of the circuit's own qubits placed on them (routing's helpers last): a chain in the
    circuit stays a chain, which matrix product state simulates without moving qubits about
    (in the device's numbering, a chain laid on a lattice is not one)."""
    from qiskit.circuit import QuantumCircuit

    active = {mapped.find_bit(q).index for inst in mapped.data for q in inst.qubits}
    placed = _logical_positions(mapped)
    order = sorted(active, key=lambda p: (placed.get(p, len(placed) + p), p))
    position = {p: i for i, p in enumerate(order)}
    compact = QuantumCircuit(len(order), name=mapped.name, global_phase=mapped.global_phase)
    compact.add_bits(mapped.clbits)  # the same clbits in the same order: the same counts
    for register in mapped.cregs:
        compact.add_register(register)
    for inst in mapped.data:
        qubits = [compact.qubits[position[mapped.find_bit(q).index]] for q in inst.qubits]
        compact.append(inst.operation, qubits, inst.clbits, copy=False)
    return compact, tuple(order)


def _logical_positions(mapped: Any) -> dict[int, int]:
    """{physical qubit: the index of the circuit's qubit first placed on it}."""
    layout = getattr(mapped, "layout", None)
    if layout is None:
        return {}
    try:
        initial = layout.initial_index_layout(filter_ancillas=True)
    except Exception:  # no layout to read: keep the device's order
        return {}
    return {physical: logical for logical, physical in enumerate(initial)}


def _multi_qubit_sets(circuit: Any) -> frozenset[tuple[int, ...]]:
    """The qubit sets (sorted indices) of `circuit`'s multi-qubit instructions, blocks too."""
    found: set[tuple[int, ...]] = set()
    for inst in circuit.data:
        if len(inst.qubits) >= 2 and not getattr(inst.operation, "blocks", ()):
            found.add(tuple(sorted(circuit.find_bit(q).index for q in inst.qubits)))
        for block in getattr(inst.operation, "blocks", ()):
            outer = [circuit.find_bit(q).index for q in inst.qubits]
            for qubits in _multi_qubit_sets(block):
                found.add(tuple(sorted(outer[i] for i in qubits)))
    return frozenset(found)


def sub_target(
    target: Any, physical: tuple[int, ...], used: frozenset[tuple[int, ...]] | None = None
) -> Any:
    """`target` cut down to `physical` qubits, renumbered 0..k-1 in that order; its
    multi-qubit instructions only on the qubit sets in `used` (new numbering), when given."""
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
            and (used is None or len(qargs) < 2 or tuple(sorted(index[q] for q in qargs)) in used)
        }
        if kept:
            sub.add_instruction(operation, kept, name=name)
    return sub


def noise_model_from_target(target: Any) -> Any:
    """Aer's basic device noise (gate errors with thermal relaxation, readout) for `target`:
    what `qiskit_aer.noise.device.basic_device_gate_errors(target=...)` builds, with each
    distinct error built once. Composing a two-qubit channel costs about a quarter of a second,
    and a device described by its medians (every data file) has the same figures on every pair:
    an all-to-all device of 20 active qubits has 190 pairs, built in a minute, and one error."""
    from qiskit.circuit import Gate, Measure
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.noise.device import basic_device_readout_errors
    from qiskit_aer.noise.device.models import (
        _combine_depol_and_relax_error,
        _device_depolarizing_error,
        _device_thermal_relaxation_error,
    )

    model = NoiseModel(basis_gates=[n for n in target.operation_names if n != "measure"])
    built: dict[tuple[Any, ...], Any] = {}
    properties = target.qubit_properties
    for name, by_qubits in target.items():
        operation = target.operation_from_name(name)
        if isinstance(operation, Measure) or by_qubits is None:
            continue
        for qubits, props in by_qubits.items():
            if props is None or qubits is None:
                continue
            relax = tuple(
                (properties[q].t1, properties[q].t2, properties[q].frequency) for q in qubits
            )
            gate = isinstance(operation, Gate)
            key = (name, len(qubits), props.duration, props.error if gate else None, relax)
            if key not in built:
                relax_error = None
                if props.duration:
                    local = tuple(range(len(qubits)))
                    relax_error = _device_thermal_relaxation_error(
                        qubits=local,
                        gate_time=props.duration,
                        relax_params=dict(zip(local, relax, strict=True)),
                        temperature=0,
                    )
                depol_error = None
                if gate and props.error:
                    depol_error = _device_depolarizing_error(
                        qubits=tuple(range(len(qubits))),
                        error_param=props.error,
                        relax_error=relax_error,
                    )
                built[key] = _combine_depol_and_relax_error(depol_error, relax_error)
            if built[key]:
                model.add_quantum_error(built[key], name, list(qubits))
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
        return noisy_device(calibration, lambda: fake_backend(calibration).target)
    if not calibration.endswith(".json"):
        raise ValueError(f"{target.name} has no calibration to emulate")
    return noisy_device(calibration, lambda: device_target(load_device(calibration)))


@dataclass(frozen=True)
class OnDevice:
    """A circuit mapped to a device."""

    fidelity: float  # the estimated success probability (module docstring)
    shot_seconds: float  # one shot's duration, readout included
    physical_qubits: tuple[int, ...]
    two_qubit_gates: int


def on_device(target: Target, parsed: ParsedCircuit) -> OnDevice:
    """`parsed` mapped to `target`'s device. Raises `CircuitDoesNotFit` when it cannot be
    mapped (too wide, a gate with no route to the device's basis or coupling)."""
    if target.kind is DeviceKind.SIMULATOR or not target.calibration:
        return OnDevice(1.0, 0.0, tuple(range(parsed.num_qubits)), 0)
    device = target_device(target)
    compact, physical = device.transpile(parsed)
    props = device.target
    log_success = 0.0
    clocks = [0.0] * len(physical)
    two_qubit = 0
    for instruction in compact.data:
        name = instruction.operation.name
        local = [compact.find_bit(q).index for q in instruction.qubits]
        if name == "barrier":
            level = max((clocks[i] for i in local), default=0.0)
            for i in local:
                clocks[i] = level
            continue
        if name in _NOT_GATES:
            continue
        found = _properties(props, name, tuple(physical[i] for i in local))
        error = (found.error if found is not None else None) or 0.0
        if error >= 1.0:
            raise CircuitDoesNotFit(f"{target.name}: {name} on {local} always fails")
        log_success += math.log1p(-error)
        start = max((clocks[i] for i in local), default=0.0)
        duration = (found.duration if found is not None else None) or 0.0
        for i in local:
            clocks[i] = start + duration
        two_qubit += len(local) == 2
    return OnDevice(
        fidelity=math.exp(log_success),
        shot_seconds=max(clocks, default=0.0),
        physical_qubits=physical,
        two_qubit_gates=two_qubit,
    )


def _properties(target: Any, name: str, qargs: tuple[int, ...]) -> Any:
    if name not in target.operation_names:
        return None
    entries = target[name]
    if not entries or None in entries:  # a global instruction: no figures per qubit
        return None
    return entries.get(qargs) or entries.get(tuple(reversed(qargs)))


# --- how a noisy run runs, and how long it takes --------------------------------------------
#
# Measured on this 2-core box (bench/emulation_estimates.py prints the table): a noisy run costs
# a setup per active qubit (the restricted noise model, then Aer's own preparation of it), then
# its method's run on the device's operations. The device's operations are the circuit's own
# with each multi-qubit gate made of its native gates (`_FAMILIES`). Methods:
# - density matrix, up to `DENSITY_MATRIX_MAX_QUBITS`: one run of 4^n amplitudes per operation,
#   every shot drawn from it (per shot when the circuit measures mid-way);
# - statevector trajectories, up to `statevector_max_qubits`: every shot a run of 2^n amplitudes;
# - matrix product state trajectories, up to `MAX_NOISY_QUBITS`: every shot a run whose cost per
#   operation grows with the qubits and the bond dimension, at most 2^`Shape.bond_bits` (the
#   device's qubits are ordered as the circuit's, so a chain stays one).
# The cheapest is chosen; past `max_run_seconds` the run is refused at submit with its estimate.

DENSITY_MATRIX = "density_matrix"
STATEVECTOR = "statevector"
MATRIX_PRODUCT_STATE = "matrix_product_state"
DENSITY_MATRIX_MAX_QUBITS = 12
MAX_NOISY_QUBITS = aer.MAX_MPS_QUBITS
# A run's floor: mapping the circuit to the device, answering.
NOISY_EMULATION_FLOOR_S = 0.015
_DM_OPERATION_S, _DM_AMPLITUDE_S = 30e-6, 4e-9
_MPS_OPERATION_S, _MPS_QUBIT_S = 5e-6, 0.6e-6


@dataclass(frozen=True)
class Family:
    """What a device family's emulation costs beyond the circuit, measured: the native
    operations a multi-qubit gate becomes, the setup of its noise per active qubit, a
    statevector trajectory's cost per operation and per amplitude, how much its operations cost
    a matrix product state against the model's, and the bond bits routing adds (on IBM's
    heavy-hex lattice a matrix product state's bond grows about twice as fast as the circuit's
    own entanglement says). IBM's operations are many and cheap (half are virtual rz); the
    data files' fewer and dearer (their two-parameter rotations are all noisy)."""

    ops_per_multi_qubit_gate: float
    setup_s_per_qubit: float
    sv_operation_s: float
    sv_amplitude_s: float
    mps_factor: float
    routing_bond_bits: int = 0


_FAMILIES = {
    "ibm": Family(7.5, 0.02, 0.3e-6, 10e-9, 1.0, routing_bond_bits=1),  # ecr/cz, rz, sx, x
    "rigetti": Family(7.5, 0.02, 3e-6, 7e-9, 0.5),  # cz with rz, rx
    "iqm": Family(5.0, 0.02, 3e-6, 7e-9, 0.5),  # cz with prx
    "ionq": Family(5.0, 0.02, 3e-6, 7e-9, 0.5),  # ms / rxx with rotations
    "quantinuum": Family(6.0, 0.02, 3e-6, 7e-9, 0.5),  # rzz with r
}
_DEFAULT_FAMILY = Family(7.5, 0.02, 3e-6, 10e-9, 1.0, routing_bond_bits=1)


def family(target: Target) -> Family:
    """The family of the device that stands in for `target` (by its calibration's name)."""
    calibration = target.calibration or ""
    if calibration.startswith("fake_"):
        return _FAMILIES["ibm"]
    return _FAMILIES.get(calibration.split("_", 1)[0], _DEFAULT_FAMILY)


@dataclass(frozen=True)
class Plan:
    """How a noisy emulation runs, and how long it is estimated to take (setup included)."""

    method: str
    seconds: float
    setup_seconds: float = 0.0  # of the whole, what each run of it costs before its shots


def plans(
    target: Target,
    parsed: ParsedCircuit,
    shots: int,
    *,
    limits: Limits,
    qubits: int | None = None,
) -> list[Plan]:
    """Every method that runs `parsed` with `target`'s noise on `qubits` active qubits
    (default: the circuit's), each with its estimated time."""
    n = parsed.num_qubits if qubits is None else qubits
    shape = parsed.shape
    costs = family(target)
    operations = (
        shape.measurements + shape.one_qubit + costs.ops_per_multi_qubit_gate * shape.multi_qubit
    )
    runs: list[tuple[str, float]] = []
    if n <= DENSITY_MATRIX_MAX_QUBITS:
        one_run = operations * (_DM_OPERATION_S + _DM_AMPLITUDE_S * 4.0**n)
        runs.append((DENSITY_MATRIX, one_run if parsed.final_measurements else shots * one_run))
    if n <= limits.statevector_max_qubits:
        per_shot = operations * (costs.sv_operation_s + costs.sv_amplitude_s * 2.0**n)
        runs.append((STATEVECTOR, shots * per_shot))
    if n <= MAX_NOISY_QUBITS:
        bond = 2.0 ** min(shape.bond_bits + costs.routing_bond_bits, n // 2)
        per_operation = _MPS_OPERATION_S + _MPS_QUBIT_S * n * bond / 2
        per_shot = operations * per_operation * costs.mps_factor
        runs.append((MATRIX_PRODUCT_STATE, shots * per_shot))
    setup = costs.setup_s_per_qubit * n
    return [Plan(method, NOISY_EMULATION_FLOOR_S + setup + run_s, setup) for method, run_s in runs]


def plan(
    target: Target,
    parsed: ParsedCircuit,
    shots: int,
    *,
    limits: Limits,
    qubits: int | None = None,
) -> Plan | None:
    """The quickest of `plans`; None when no method runs that many qubits with noise."""
    found = plans(target, parsed, shots, limits=limits, qubits=qubits)
    return min(found, key=lambda p: p.seconds) if found else None


def estimated_seconds(
    target: Target, parsed: ParsedCircuit, shots: int, *, limits: Limits
) -> float:
    """How long `emulate_target` takes to run `parsed` as `target` (the run alone, not a wait
    for it): what a submit answers and `/api/v2/network/estimate` says alike. Raises
    `CircuitDoesNotFit` when no method runs that many qubits with noise."""
    if target.kind is DeviceKind.SIMULATOR:
        ideal = aer.estimated_ns(
            parsed, shots, statevector_max_qubits=limits.statevector_max_qubits
        )
        return ideal / 1e9
    if target.kind is DeviceKind.SYNTAX_CHECKER:
        return NOISY_EMULATION_FLOOR_S
    return noisy_plan(target, parsed, shots, limits=limits).seconds


def noisy_plan(target: Target, parsed: ParsedCircuit, shots: int, *, limits: Limits) -> Plan:
    """`plan`, or `CircuitDoesNotFit` when no method runs the circuit's qubits with noise."""
    chosen = plan(target, parsed, shots, limits=limits)
    if chosen is None:
        raise CircuitDoesNotFit(
            f"The emulation of {target.supplier} backend {target.name} simulates at most "
            f"{MAX_NOISY_QUBITS} qubits with noise; the circuit has {parsed.num_qubits}"
        )
    return chosen


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
    return device.run(
        parsed,
        shots,
        plan=lambda qubits: plan(target, parsed, shots, limits=limits, qubits=qubits),
    )
