"""The network's backends: every target of every supplier, plus the local `qiskit_aer`, under
short snake_case ids, and the one mapping from any name a client uses to them (`find`).

Ids are made from the supplier's own names, so they are stable and guessable:

- Azure Quantum: the target name, `.` and `-` as `_` (`ionq.simulator` -> `ionq_simulator`,
  `quantinuum.qpu.h2-1` -> `quantinuum_qpu_h2_1`);
- IBM Quantum: the backend name (`ibm_brisbane`);
- AWS Braket: `braket_`, the provider unless it is Amazon's own simulators, and the device
  (`sv1` -> `braket_sv1`, IonQ's `forte-1` -> `braket_ionq_forte_1`);
- the local simulator: `qiskit_aer`.

`find(name)` accepts, after normalising the name (lowercase, `.`, `-`, `/` and spaces as `_`):

- an id, or the supplier's own name (`ionq.simulator`, `ibm_brisbane`, `quantinuum.qpu.h2-1`);
- an Azure Quantum target without its kind (`quantinuum.h2-1`, `ionq.aria-1`), and the short
  names in `_ALIASES` (`ionq.aria` -> `ionq_qpu_aria_1`): each names the same device;
- the local simulator's other names: `aer`, `aer_simulator`, `simulator_aer`,
  `statevector_sim` (the QCOS Python client's ids), `local`;
- a supplier prefix and any of the above or the supplier's device name (the client's
  `backend_id` forms): `ibm.sherbrooke`, `ibm_quantum.ibm_fez`, `azure_quantum.ionq_aria`,
  `braket.sv1`, `braket.garnet`, `aws.iqm_garnet`, `local.aer`; the backend found must
  belong to that supplier. An IBM processor family (`ibm.heron`) names no one device: 404
  listing the family's devices;
- a retired device (`_RETIRED`): listed by `/backends` and `/status` as `retired`, with the
  reason and its `successor`, and never run (a fan-out reports it skipped). These are the
  names the reference uses for devices the suppliers no longer offer: `rigetti_aspen`
  (`rigetti.qpu.aspen-m-3`), `ionq.harmony` (`ionq.qpu`), `quantinuum.h1-1`, `quantinuum.h1-2`.

Anything else is 404 BACKEND_NOT_FOUND. `supplier_target` resolves a v1 supplier path's
backend (`/api/v1/{supplier}/execute`) through the same mapping, and `public_id` names the
backend of a stored row (v1 job rows and ledger entries hold the supplier's own name) by its id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from shared.errors import BadRequest, NotFound
from shared.suppliers.base import DeviceKind, Target
from shared.suppliers.catalog import catalog

LOCAL_ID = "qiskit_aer"
LOCAL_SUPPLIER = "local"
_SEPARATORS = re.compile(r"[.\-\s/]+")

# Other names of a backend that is offered: the same device, never another one.
_ALIASES = {
    "aer": LOCAL_ID,
    "aer_simulator": LOCAL_ID,
    "simulator_aer": LOCAL_ID,
    "statevector_sim": LOCAL_ID,
    "local": LOCAL_ID,
    "local_simulator": LOCAL_ID,
    "ionq_aria": "ionq_qpu_aria_1",  # Azure Quantum offers one Aria: aria-1
    "ionq_forte": "ionq_qpu_forte_1",  # and one Forte: forte-1
}

# A client's supplier prefix -> (supplier id, the prefix the supplier's ids carry).
_PREFIXES = {
    "ibm_quantum": ("ibm_quantum", "ibm_"),
    "ibmq": ("ibm_quantum", "ibm_"),
    "ibm": ("ibm_quantum", "ibm_"),
    "azure_quantum": ("azure_quantum", ""),
    "azure": ("azure_quantum", ""),
    "aws_braket": ("braket", "braket_"),
    "amazon_braket": ("braket", "braket_"),
    "braket": ("braket", "braket_"),
    "aws": ("braket", "braket_"),
    "local": (LOCAL_SUPPLIER, ""),
}


@dataclass(frozen=True)
class _Retired:
    id: str
    provider: str
    name: str  # the supplier's name for it when it was offered
    num_qubits: int
    successor: str
    reason: str
    aliases: tuple[str, ...]


# Devices the reference names that their suppliers retired (all were Azure Quantum targets).
_RETIRED = (
    _Retired(
        "rigetti_aspen",
        "rigetti",
        "rigetti.qpu.aspen-m-3",
        79,
        "rigetti_qpu_cepheus_1_108q",
        "Retired: Rigetti retired its Aspen processors (Aspen-M-3 was the last); "
        "Cepheus-1-108Q succeeds them.",
        ("rigetti_aspen_m_3", "aspen_m_3", "braket_rigetti_aspen_m_3"),
    ),
    _Retired(
        "ionq_harmony",
        "ionq",
        "ionq.qpu",
        11,
        "ionq_qpu_aria_1",
        "Retired: IonQ retired Harmony (Azure Quantum's `ionq.qpu`); Aria succeeds it.",
        (),
    ),
    _Retired(
        "quantinuum_qpu_h1_1",
        "quantinuum",
        "quantinuum.qpu.h1-1",
        20,
        "quantinuum_qpu_h2_1",
        "Retired: Quantinuum's H1 systems are no longer offered; H2 succeeds them.",
        (),
    ),
    _Retired(
        "quantinuum_qpu_h1_2",
        "quantinuum",
        "quantinuum.qpu.h1-2",
        20,
        "quantinuum_qpu_h2_1",
        "Retired: Quantinuum's H1 systems are no longer offered; H2 succeeds them.",
        (),
    ),
)


def normalise(name: str) -> str:
    """`name` as an id: lowercase, with `.`, `-`, `/` and spaces as `_`."""
    return _SEPARATORS.sub("_", name.strip().lower())


@dataclass(frozen=True)
class Backend:
    """One backend of the network. `target` is None for the local simulator; a retired
    backend's target is not `available` and `successor` names the backend that succeeds it."""

    id: str
    supplier: str  # a supplier id, or "local"
    provider: str
    name: str  # the supplier's own name for it
    target: Target | None
    successor: str | None = None

    @property
    def local(self) -> bool:
        return self.target is None

    @property
    def retired(self) -> bool:
        """The supplier no longer offers it: listed for reference, never run."""
        return self.target is not None and not self.target.available

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


def _retired(entry: _Retired) -> Backend:
    target = Target(
        supplier="azure_quantum",
        provider=entry.provider,
        name=entry.name,
        num_qubits=entry.num_qubits,
        kind=DeviceKind.QPU,
        description=entry.reason,
        available=False,
    )
    return Backend(entry.id, "azure_quantum", entry.provider, entry.name, target, entry.successor)


@lru_cache(maxsize=1)
def _all() -> dict[str, Backend]:
    found = {LOCAL_ID: Backend(LOCAL_ID, LOCAL_SUPPLIER, "aer", LOCAL_ID, None)}
    for info in catalog().values():
        for target in info.targets():
            backend = Backend(backend_id(target), info.id, target.provider, target.name, target)
            if backend.id in found:
                raise ValueError(f"two backends have the id {backend.id}")
            found[backend.id] = backend
    for entry in _RETIRED:
        if entry.id in found or entry.successor not in found:
            raise ValueError(f"retired backend {entry.id}: id taken or successor unknown")
        found[entry.id] = _retired(entry)
    return found


@lru_cache(maxsize=1)
def _names() -> dict[str, Backend]:
    """Every name `find` takes without a supplier prefix, normalised, to its backend."""
    backends = _all()
    names = dict(backends)

    def add(name: str, backend: Backend) -> None:
        key = normalise(name)
        if names.setdefault(key, backend) is not backend:
            raise ValueError(f"{key} names both {names[key].id} and {backend.id}")

    for backend in backends.values():
        add(backend.name, backend)
        parts = backend.name.split(".")
        if backend.supplier == "azure_quantum" and len(parts) == 3:  # ionq.qpu.aria-1
            add(f"{parts[0]}.{parts[2]}", backend)
    for alias, backend_id_ in _ALIASES.items():
        add(alias, backends[backend_id_])
    for entry in _RETIRED:
        for alias in entry.aliases:
            add(alias, backends[entry.id])
    return names


def all_backends() -> tuple[Backend, ...]:
    """Every backend: `qiskit_aer` first, then the catalog's order, then the retired ones."""
    return tuple(_all().values())


def find(backend: str) -> Backend:
    """The backend called `backend`, in any form the module docstring lists; `NotFound`
    BACKEND_NOT_FOUND for any other."""
    wanted = normalise(backend)
    found = _names().get(wanted) or _prefixed(wanted)
    if found is None:
        raise NotFound(
            f"Unknown backend {backend[:100]!r}{_family(wanted)}; GET /api/v2/network/backends "
            "lists them",
            error_code="BACKEND_NOT_FOUND",
        )
    return found


def _prefixed(wanted: str) -> Backend | None:
    """`wanted` as `<supplier prefix>_<name>`: the supplier's backend of that name."""
    for prefix, (supplier, id_prefix) in _PREFIXES.items():
        if not wanted.startswith(prefix + "_"):
            continue
        rest = wanted[len(prefix) + 1 :]
        candidates = [
            _names().get(rest),
            _names().get(id_prefix + rest) if id_prefix else None,
            _by_device().get((supplier, rest)),
        ]
        for found in candidates:
            if found is not None and found.supplier == supplier:
                return found
    return None


@lru_cache(maxsize=1)
def _by_device() -> dict[tuple[str, str], Backend]:
    """Braket's backends by their device name alone (`garnet`, `forte_1`)."""
    return {(b.supplier, normalise(b.name)): b for b in _all().values() if b.supplier == "braket"}


def _family(wanted: str) -> str:
    """Where `wanted` names a processor family (`ibm_heron`), the family's devices."""
    for prefix, (supplier, _) in _PREFIXES.items():
        if wanted.startswith(prefix + "_") and supplier in catalog():
            family = wanted[len(prefix) + 1 :]
            for provider in catalog()[supplier].providers:
                if provider.id == family:
                    ids = ", ".join(backend_id(t) for t in provider.targets)
                    return f" (a processor family, not a device: {ids})"
    return ""


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


def public_id(supplier: str | None, name: str) -> str:
    """The network id to show for a backend a row names by `supplier` (a supplier id, or
    None or "local" for the local simulator) and the supplier's `name` (v1 job rows and
    ledger entries written before they stored ids), or by the id itself; the name as stored
    when it is neither (a backend since removed, a rerank tier)."""
    if supplier is not None:
        found = _by_supplier_name().get((supplier, name))
        if found is not None:
            return found.id
    try:
        return find(name).id
    except NotFound:
        return name


def stored_names(backend: str) -> tuple[str, ...]:
    """Every name a stored row may give backend `backend` (any form `find` takes): its id
    and the supplier's own name; `(backend,)` for a name `find` does not know."""
    try:
        found = find(backend)
    except NotFound:
        return (backend,)
    return tuple(dict.fromkeys((found.id, found.name)))


def supplier_target(supplier: str, name: str) -> Target:
    """Supplier `supplier`'s target called `name` in any form `find` takes (for the v1
    supplier paths): `NotFound` BACKEND_NOT_FOUND for a name of no backend of that supplier,
    `BadRequest` BACKEND_RETIRED (naming its successor) for a retired one."""
    found: Backend | None
    try:
        found = find(name)
    except NotFound:
        found = _prefixed(normalise(f"{supplier}.{name}"))
    if found is None or found.supplier != supplier or found.target is None:
        raise NotFound(
            f"{supplier} has no backend {name[:100]!r}; GET /api/v1/{supplier}/providers "
            "lists them",
            error_code="BACKEND_NOT_FOUND",
        )
    if found.retired:
        raise BadRequest(
            f"{found.id} is retired and never runs: {found.target.description}"
            + (f" Its successor: {found.successor}." if found.successor else ""),
            error_code="BACKEND_RETIRED",
        )
    return found.target
