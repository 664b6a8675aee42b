"""The suppliers' catalog: suppliers, providers and targets, from `data/catalog/*.json`.

A QPU target that names a device data file (`calibration: "<file>.json"`) takes its qubit count,
native gates and coupling from that file, so a device's figures live in one place. IBM targets
name the `qiskit_ibm_runtime.fake_provider` snapshot their emulation uses (`fake_<name>`); a test
checks that their qubits and gates agree with it. Reading the catalog imports no supplier SDK.

Prices are not in the catalog: each target's is in the price book (`shared.pricing.book`),
the one source of prices, which checks when it loads that it prices every catalog target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.errors import NotFound
from shared.suppliers.base import DeviceKind, Provider, Target
from shared.suppliers.devices import DATA_DIR, load_device

SUPPLIER_IDS = ("azure_quantum", "ibm_quantum", "braket")


@dataclass(frozen=True)
class SupplierInfo:
    id: str
    name: str
    description: str
    providers: tuple[Provider, ...]

    def targets(self) -> tuple[Target, ...]:
        return tuple(t for p in self.providers for t in p.targets)

    def target(self, name: str) -> Target:
        """The target called `name` (case-insensitive); `NotFound` BACKEND_NOT_FOUND."""
        wanted = name.strip().lower()
        for target in self.targets():
            if target.name.lower() == wanted:
                return target
        raise NotFound(
            f"{self.name} has no backend {name[:100]!r}; GET /api/v1/{self.id}/providers "
            "lists them",
            error_code="BACKEND_NOT_FOUND",
        )


def _target(supplier: str, provider: str, data: dict[str, Any]) -> Target:
    if "cost" in data:
        raise ValueError(f"{supplier}/{data['name']}: prices live in the price book only")
    calibration = str(data.get("calibration", ""))
    num_qubits = data.get("num_qubits")
    native = tuple(data.get("native_gates", ()))
    coupling = None
    description = str(data.get("description", ""))
    if calibration.endswith(".json"):
        device = load_device(calibration)
        num_qubits = device.num_qubits
        native = native or (*device.gates_1q, *device.gates_2q, "measure")
        coupling = device.edges
        description = description or f"{device.name}; emulated with {device.source}, {device.as_of}"
    if num_qubits is None:
        raise ValueError(f"{supplier}/{data['name']}: no num_qubits and no device data file")
    return Target(
        supplier=supplier,
        provider=provider,
        name=str(data["name"]),
        num_qubits=int(num_qubits),
        kind=DeviceKind(data["kind"]),
        description=description,
        native_gates=native,
        coupling=coupling,
        topology=str(data.get("topology", "")),
        mid_circuit_measurement=bool(data.get("mid_circuit_measurement", False)),
        reset=bool(data.get("reset", False)),
        classical_control=bool(data.get("classical_control", False)),
        ref=str(data.get("ref", "")),
        region=str(data.get("region", "")),
        available=bool(data.get("available", True)),
        calibration=calibration,
        emulation_max_qubits=data.get("emulation_max_qubits"),
    )


def _supplier(data: dict[str, Any]) -> SupplierInfo:
    supplier_id = str(data["id"])
    if "cost" in data:
        raise ValueError(f"{supplier_id}: prices live in the price book only")
    providers = tuple(
        Provider(
            id=str(p["id"]),
            name=str(p["name"]),
            description=str(p["description"]),
            targets=tuple(_target(supplier_id, p["id"], t) for t in p["targets"]),
        )
        for p in data["providers"]
    )
    return SupplierInfo(
        id=supplier_id,
        name=str(data["name"]),
        description=str(data["description"]),
        providers=providers,
    )


def load_catalog() -> dict[str, SupplierInfo]:
    """Every supplier, in `SUPPLIER_IDS` order."""
    found = {}
    for supplier_id in SUPPLIER_IDS:
        path = DATA_DIR / "catalog" / f"{supplier_id}.json"
        found[supplier_id] = _supplier(json.loads(path.read_text(encoding="utf-8")))
    return found


@lru_cache(maxsize=1)
def catalog() -> dict[str, SupplierInfo]:
    """Every supplier, in `SUPPLIER_IDS` order (read once per process)."""
    return load_catalog()


def supplier(supplier_id: str) -> SupplierInfo:
    """The supplier `supplier_id`; `NotFound` SUPPLIER_NOT_FOUND for any other."""
    info = catalog().get(supplier_id.strip().lower())
    if info is None:
        raise NotFound(
            f"Unknown supplier {supplier_id[:100]!r}; suppliers: {', '.join(SUPPLIER_IDS)}",
            error_code="SUPPLIER_NOT_FOUND",
        )
    return info
