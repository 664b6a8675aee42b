"""The network's backends: every target of every supplier, plus the local `qiskit_aer`, under
short snake_case ids.

Ids are made from the supplier's own names, so they are stable and guessable:

- Azure Quantum: the target name, `.` and `-` as `_` (`ionq.simulator` -> `ionq_simulator`,
  `quantinuum.qpu.h2-1` -> `quantinuum_qpu_h2_1`);
- IBM Quantum: the backend name (`ibm_brisbane`);
- AWS Braket: `braket_`, the provider unless it is Amazon's own simulators, and the device
  (`sv1` -> `braket_sv1`, IonQ's `forte-1` -> `braket_ionq_forte_1`);
- the local simulator: `qiskit_aer`.

A name given by a client is normalised the same way first (lowercase, `.`/`-` as `_`), so
`ionq.simulator` finds `ionq_simulator` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from shared.errors import NotFound
from shared.suppliers.base import DeviceKind, Target
from shared.suppliers.catalog import catalog

LOCAL_ID = "qiskit_aer"
LOCAL_SUPPLIER = "local"
_SEPARATORS = re.compile(r"[.\-\s/]+")


def normalise(name: str) -> str:
    """`name` as an id: lowercase, with `.`, `-`, `/` and spaces as `_`."""
    return _SEPARATORS.sub("_", name.strip().lower())


@dataclass(frozen=True)
class Backend:
    """One backend of the network. `target` is None for the local simulator."""

    id: str
    supplier: str  # a supplier id, or "local"
    provider: str
    name: str  # the supplier's own name for it
    target: Target | None

    @property
    def local(self) -> bool:
        return self.target is None

    @property
    def kind(self) -> DeviceKind:
        return DeviceKind.SIMULATOR if self.target is None else self.target.kind

    @property
    def num_qubits(self) -> int | None:
        """The device's qubits; None for the local simulator (bounded by the caller's tier)."""
        return None if self.target is None else self.target.num_qubits


def backend_id(target: Target) -> str:
    """The network id of a supplier's target (module docstring)."""
    if target.supplier == "braket":
        provider = "" if target.provider == "amazon" else f"{target.provider}_"
        return normalise(f"braket_{provider}{target.name}")
    return normalise(target.name)


@lru_cache(maxsize=1)
def _all() -> dict[str, Backend]:
    found = {LOCAL_ID: Backend(LOCAL_ID, LOCAL_SUPPLIER, "aer", LOCAL_ID, None)}
    for info in catalog().values():
        for target in info.targets():
            backend = Backend(backend_id(target), info.id, target.provider, target.name, target)
            if backend.id in found:
                raise ValueError(f"two backends have the id {backend.id}")
            found[backend.id] = backend
    return found


def all_backends() -> tuple[Backend, ...]:
    """Every backend: `qiskit_aer` first, then the catalog's order."""
    return tuple(_all().values())


def find(backend: str) -> Backend:
    """The backend called `backend` (an id, or a name that normalises to one); `NotFound`
    BACKEND_NOT_FOUND for any other."""
    found = _all().get(normalise(backend))
    if found is None:
        raise NotFound(
            f"Unknown backend {backend[:100]!r}; GET /api/v2/network/backends lists them",
            error_code="BACKEND_NOT_FOUND",
        )
    return found


@lru_cache(maxsize=1)
def _by_supplier_name() -> dict[tuple[str, str], Backend]:
    return {(b.supplier, b.name): b for b in _all().values() if not b.local}


def of_job(supplier: str | None, name: str) -> Backend:
    """The backend a job row names (its `supplier`, None for the local simulator, and
    `backend`, the supplier's name)."""
    if supplier is None:
        return _all()[LOCAL_ID]
    found = _by_supplier_name().get((supplier, name))
    if found is None:
        raise NotFound(f"Unknown backend {supplier}/{name}", error_code="BACKEND_NOT_FOUND")
    return found
