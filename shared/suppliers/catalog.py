"""The suppliers' catalog: suppliers, providers and targets, from `data/catalog/*.json`.

A QPU target that names a device data file (`calibration: "<file>.json"`) takes its qubit count,
native gates and coupling from that file, so a device's figures live in one place. IBM targets
name the `qiskit_ibm_runtime.fake_provider` snapshot their emulation uses (`fake_<name>`); a test
checks that their qubits and gates agree with it. Reading the catalog imports no supplier SDK.

Prices are not in the catalog files: each target's `cost` comes from the price book
(`shared.suppliers.pricebook`, `data/pricebook.json`), the one source of prices. A target the
book does not price, or a book entry that prices no catalog target, is an error at load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.errors import NotFound
from shared.suppliers.base import DeviceKind, Provider, Target
from shared.suppliers.emulation import DATA_DIR, load_device
from shared.suppliers.pricebook import PriceBook, pricebook

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


def _target(supplier: str, provider: str, data: dict[str, Any], book: PriceBook) -> Target:
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
        cost=book.cost(supplier, provider, str(data["name"])),
        emulation_max_qubits=data.get("emulation_max_qubits"),
    )


def _supplier(data: dict[str, Any], book: PriceBook) -> SupplierInfo:
    supplier_id = str(data["id"])
    if "cost" in data:
        raise ValueError(f"{supplier_id}: prices live in the price book only")
    providers = tuple(
        Provider(
            id=str(p["id"]),
            name=str(p["name"]),
            description=str(p["description"]),
            targets=tuple(_target(supplier_id, p["id"], t, book) for t in p["targets"]),
        )
        for p in data["providers"]
    )
    return SupplierInfo(
        id=supplier_id,
        name=str(data["name"]),
        description=str(data["description"]),
        providers=providers,
    )


def load_catalog(book: PriceBook | None = None) -> dict[str, SupplierInfo]:
    """Every supplier, in `SUPPLIER_IDS` order, priced from `book` (the price book by default).

    `ValueError` when a target has no price in the book (or two), or when a book entry prices
    no catalog target (a typo, or a target since removed)."""
    book = pricebook() if book is None else book
    found = {}
    for supplier_id in SUPPLIER_IDS:
        path = DATA_DIR / "catalog" / f"{supplier_id}.json"
        found[supplier_id] = _supplier(json.loads(path.read_text(encoding="utf-8")), book)
    _check_prices(found, book)
    return found


def _check_prices(found: dict[str, SupplierInfo], book: PriceBook) -> None:
    """Every book entry names catalog targets and providers only, and prices some target."""
    used = {
        book.entry_for(t.supplier, t.provider, t.name).id
        for s in found.values()
        for t in s.targets()
    }
    for entry in book.entries:
        info = found.get(entry.supplier)
        targets = {t.name.lower() for t in info.targets()} if info else set()
        providers = {p.id.lower() for p in info.providers} if info else set()
        stray = sorted((set(entry.targets) - targets) | (set(entry.providers) - providers))
        if stray:
            raise ValueError(
                f"Price book entry {entry.id}: {entry.supplier} has no {', '.join(stray)}"
            )
        if entry.id not in used:
            raise ValueError(f"Price book entry {entry.id} prices no catalog target")


@lru_cache(maxsize=1)
def catalog() -> dict[str, SupplierInfo]:
    """Every supplier, in `SUPPLIER_IDS` order, priced (read once per process)."""
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
