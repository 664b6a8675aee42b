"""The devices the emulation stands in for: their figures, and the qiskit `Target` of each.

A QPU's figures come from one of two places. IBM's backends are the
`qiskit_ibm_runtime.fake_provider` backend of the same name (`fake_backend("fake_brisbane")`, a
real calibration snapshot, built once per process); every other QPU's are a data file under
`shared/suppliers/data/devices/` that names its source and date (`load_device`), published
medians applied to every qubit and pair, made into a qiskit `Target` by `device_target`.

The emulation (`shared.suppliers.emulation`) runs on these, and the network API's calibration
views show them. qiskit_ibm_runtime and qiskit are imported inside the functions only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
DEVICES_DIR = DATA_DIR / "devices"
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


_fake_backends: dict[str, Any] = {}
_fake_backends_lock = threading.Lock()


def fake_backend(name: str) -> Any:
    """The process's one instance of the `qiskit_ibm_runtime.fake_provider` backend called
    `name` (`fake_brisbane`). Raises `ValueError` when the package has none by that name."""
    with _fake_backends_lock:
        backend = _fake_backends.get(name)
        if backend is None:
            backend = _fake_backends[name] = _fake_backend_class(name)()
        return backend


def _fake_backend_class(name: str) -> type:
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    for value in vars(fake_provider).values():
        if (
            isinstance(value, type)
            and issubclass(value, FakeBackendV2)
            and getattr(value, "backend_name", None) == name
        ):
            return value
    raise ValueError(f"qiskit-ibm-runtime has no fake backend named {name!r}")
