"""What a backend's calibration says: the figures its emulation runs on, for the API.

The figures are the ones the emulation runs on (`shared.suppliers.devices`): IBM's
`fake_provider` snapshot of the backend, or the device data file of every other QPU (published
medians applied to every qubit and pair). Live calibration is not fetched; the `source` of every
answer says which snapshot or file it is. What they predict for one circuit (its fidelity and
one shot's duration after layout) is `shared.suppliers.emulation.on_device`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.suppliers.base import DeviceKind, Target
from shared.suppliers.devices import fake_backend, load_device


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


def _global(entries: Any) -> bool:
    return not entries or None in entries


def _micro(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e6
