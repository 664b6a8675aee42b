"""What a backend's calibration says, and what it predicts for one circuit.

The figures are the ones the emulation runs on (`shared.suppliers.emulation.target_device`):
IBM's `fake_provider` snapshot of the backend, or the device data file of every other QPU
(published medians applied to every qubit and pair). Live calibration is not fetched; the
`source` of every answer says which snapshot or file it is.

`on_device` maps a circuit to the device (the emulation's own transpile: layout, routing,
basis) and reads, for the physical qubits it landed on:

- the estimated success probability, ESP = prod over gates (1 - gate error) x prod over
  measurements (1 - readout error): the chance that no error happens in a shot. It is the
  fidelity `best_fidelity` ranks by and `weighted_average` weights by.
- the duration of one shot: the critical path through the gates' durations (each qubit's
  clock advances by each gate it takes part in; a gate starts when all its qubits are free).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shared.circuits import ParsedCircuit
from shared.suppliers.base import CircuitDoesNotFit, DeviceKind, Target
from shared.suppliers.emulation import load_device, target_device

_NOT_GATES = frozenset({"barrier", "delay"})


@dataclass(frozen=True)
class QubitCalibration:
    qubit: int
    t1_us: float | None
    t2_us: float | None
    readout_error: float | None


@dataclass(frozen=True)
class GateCalibration:
    gate: str
    qubits: list[int] | None  # None: the same figure for every qubit or pair
    error: float | None
    duration_ns: float | None


@dataclass(frozen=True)
class Calibration:
    source: str  # what the figures come from
    timestamp: str | None  # when the snapshot was taken or the figures published
    kind: str  # "snapshot" (per qubit), "data_file" (medians), "ideal" (a noiseless simulator)
    qubits: list[QubitCalibration]
    gates: list[GateCalibration]
    notes: str = ""


@dataclass(frozen=True)
class OnDevice:
    """A circuit mapped to a device."""

    fidelity: float  # the estimated success probability (module docstring)
    shot_seconds: float  # one shot's duration, readout included
    physical_qubits: tuple[int, ...]
    two_qubit_gates: int


def calibration(target: Target | None) -> Calibration:
    """The calibration the emulation of `target` uses; `ideal` for a simulator (None: the
    local simulator)."""
    if target is None or target.kind is DeviceKind.SIMULATOR or not target.calibration:
        what = "the local Aer simulator" if target is None else f"the simulator {target.name}"
        return Calibration(
            source=f"{what}: noiseless",
            timestamp=None,
            kind="ideal",
            qubits=[],
            gates=[],
        )
    if target.calibration.endswith(".json"):
        return _from_data_file(target.calibration)
    return _from_snapshot(target)


def _from_data_file(file_name: str) -> Calibration:
    data = load_device(file_name)
    readout = data.readout_error
    qubits = [
        QubitCalibration(q, data.t1_s * 1e6, data.t2_s * 1e6, readout)
        for q in range(data.num_qubits)
    ]
    gates = [GateCalibration(g, None, data.error_1q, data.time_1q_s * 1e9) for g in data.gates_1q]
    gates += [GateCalibration(g, None, data.error_2q, data.time_2q_s * 1e9) for g in data.gates_2q]
    gates.append(GateCalibration("measure", None, readout, data.readout_time_s * 1e9))
    return Calibration(
        source=f"device data file {file_name}: {data.source}",
        timestamp=data.as_of,
        kind="data_file",
        qubits=qubits,
        gates=gates,
        notes="Published medians, the same for every qubit and pair. " + data.notes,
    )


def _from_snapshot(target: Target) -> Calibration:
    from shared.suppliers.ibm import fake_backend

    backend = fake_backend(target.calibration)
    qiskit_target = backend.target
    measure = qiskit_target["measure"] if "measure" in qiskit_target.operation_names else {}
    qubits = []
    for q, props in enumerate(qiskit_target.qubit_properties or []):
        readout = measure.get((q,))
        qubits.append(
            QubitCalibration(
                q,
                _micro(getattr(props, "t1", None)),
                _micro(getattr(props, "t2", None)),
                readout.error if readout is not None else None,
            )
        )
    gates = []
    for name in sorted(qiskit_target.operation_names):
        if name in ("measure", "delay") or _global(qiskit_target[name]):
            continue
        for qargs, props in sorted(qiskit_target[name].items()):
            if props is None:
                continue
            duration = None if props.duration is None else props.duration * 1e9
            gates.append(GateCalibration(name, list(qargs), props.error, duration))
    updated = backend.properties().last_update_date
    return Calibration(
        source=f"qiskit-ibm-runtime fake_provider snapshot {target.calibration}",
        timestamp=updated.isoformat() if updated is not None else None,
        kind="snapshot",
        qubits=qubits,
        gates=gates,
    )


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
    if _global(entries):
        return None
    return entries.get(qargs) or entries.get(tuple(reversed(qargs)))


def _global(entries: Any) -> bool:
    return not entries or None in entries


def _micro(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e6
