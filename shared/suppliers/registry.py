"""Which adapter serves which supplier, in which mode, and whether its credentials work.

Adapters are imported on first use (`importlib`), so an HTTP function that only lists
suppliers never imports qiskit-ibm-runtime, braket or azure-quantum. The app calls suppliers
through the registry (`submit`, `poll`, `cancel`, `emulate`), which puts each call in a span.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

from shared import telemetry
from shared.circuits import ParsedCircuit
from shared.config import Settings
from shared.errors import ApiError, ServiceUnavailable
from shared.suppliers import aer, emulation
from shared.suppliers.base import (
    DeviceKind,
    EmulatedRun,
    Mode,
    SubmitRequest,
    SupplierAdapter,
    Target,
    TaskState,
    sanitise,
)
from shared.suppliers.catalog import SUPPLIER_IDS, catalog, supplier
from shared.suppliers.schemas import (
    BraketDevice,
    BraketDeviceList,
    IBMBackend,
    IBMBackendList,
    SupplierList,
    SupplierSummary,
    target_status,
)

logger = logging.getLogger(__name__)

_ADAPTERS = {
    "ibm_quantum": ("shared.suppliers.ibm", "IBMQuantum"),
    "azure_quantum": ("shared.suppliers.azure_quantum", "AzureQuantum"),
    "braket": ("shared.suppliers.braket", "Braket"),
}
# A credential check is a network call: its answer is kept this long.
STATUS_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class SupplierStatus:
    status: str  # "active" | "unavailable"
    reason: str | None = None


class SupplierRegistry:
    """The suppliers' adapters, modes and statuses, and the listings built from the catalog.

    `adapters` replaces the adapter of a supplier (an embedding that brings its own, or a test
    of the job flow); the others are imported on first use.
    """

    def __init__(
        self, settings: Settings, adapters: Mapping[str, SupplierAdapter] | None = None
    ) -> None:
        self._settings = settings
        self._adapters: dict[str, SupplierAdapter] = dict(adapters or {})
        self._status: dict[str, tuple[float, SupplierStatus]] = {}
        self._lock = threading.Lock()

    def adapter(self, supplier_id: str) -> SupplierAdapter:
        """The adapter of `supplier_id` (made on first use); `NotFound` for an unknown one."""
        supplier_id = supplier(supplier_id).id
        with self._lock:
            found = self._adapters.get(supplier_id)
            if found is None:
                module_name, class_name = _ADAPTERS[supplier_id]
                cls = getattr(importlib.import_module(module_name), class_name)
                found = self._adapters[supplier_id] = cls(self._settings)
            return found

    # -- calls: every call the app makes to a supplier goes through these, each in a span ------

    def submit(self, request: SubmitRequest) -> str:
        """The adapter's `submit`: the supplier's task id for `request`."""
        target = request.target
        with self._call(target.supplier, "submit", target) as span:
            task_id = self.adapter(target.supplier).submit(request)
            span.set("supplier.task_id", task_id)
            return task_id

    def poll(self, target: Target, task_id: str) -> TaskState:
        """The adapter's `poll` of task `task_id` on `target`."""
        with self._call(target.supplier, "poll", target) as span:
            span.set("supplier.task_id", task_id)
            state = self.adapter(target.supplier).poll(target, task_id)
            span.set("supplier.state", state.state.value)
            return state

    def cancel(self, target: Target, task_id: str) -> None:
        """The adapter's `cancel` of task `task_id` on `target`."""
        with self._call(target.supplier, "cancel", target) as span:
            span.set("supplier.task_id", task_id)
            self.adapter(target.supplier).cancel(target, task_id)

    def emulate(
        self, target: Target, parsed: ParsedCircuit, shots: int, watch: aer.Watch | None = None
    ) -> EmulatedRun:
        """The adapter's emulation of `target`. A heavy noisy run (estimated at
        `aer.HEAVY_RUN_NS` or more) runs in a simulator process, held to `watch`, as heavy Aer
        runs do: Aer holds the GIL for a whole run, which would freeze every function of the
        process."""
        with self._call(target.supplier, "emulate", target) as span:
            noisy = target.kind in (DeviceKind.QPU, DeviceKind.EMULATOR)
            chosen = (
                emulation.plan(target, parsed, shots, limits=self._settings.limits)
                if noisy
                else None
            )
            if chosen is not None and chosen.seconds * 1e9 >= aer.HEAVY_RUN_NS:
                span.set("supplier.process_pool", True)
                run: EmulatedRun = aer.run_in_pool(
                    emulate_in_child,
                    self._settings,
                    target,
                    parsed,
                    shots,
                    what=f"The emulation of {target.name}",
                    seconds=watch.seconds if watch else None,
                    stopped=watch.stopped if watch else None,
                )
                return run
            return self.adapter(target.supplier).emulate(target, parsed, shots)

    def _call(
        self, supplier_id: str, operation: str, target: Target | None = None
    ) -> AbstractContextManager[telemetry.Span]:
        return telemetry.supplier_call(
            supplier_id,
            operation,
            backend=target.name if target else None,
            mode=self.mode(supplier_id).value,
        )

    def mode(self, supplier_id: str) -> Mode:
        """`cloud` when the supplier's credentials are configured, else `emulated`."""
        configured = self._settings.suppliers.configured(supplier(supplier_id).id)
        return Mode.CLOUD if configured else Mode.EMULATED

    def status(self, supplier_id: str) -> SupplierStatus:
        """`active`, or `unavailable` with the reason when configured credentials fail."""
        if self.mode(supplier_id) is Mode.EMULATED:
            return SupplierStatus("active")
        now = time.monotonic()
        with self._lock:
            cached = self._status.get(supplier_id)
        if cached and now - cached[0] < STATUS_TTL_SECONDS:
            return cached[1]
        try:
            with self._call(supplier_id, "check_credentials"):
                reason = self.adapter(supplier_id).check_credentials()
        except Exception as exc:  # a check must never take the listing down
            reason = sanitise(f"{type(exc).__name__}: {exc}")
        result = SupplierStatus("unavailable", reason) if reason else SupplierStatus("active")
        if reason:
            logger.warning("supplier %s unavailable: %s", supplier_id, reason)
        with self._lock:
            self._status[supplier_id] = (now, result)
        return result

    @staticmethod
    def ids() -> tuple[str, ...]:
        return SUPPLIER_IDS

    # -- listings -------------------------------------------------------------------------------

    def list_suppliers(self) -> SupplierList:
        summaries = []
        for info in catalog().values():
            state = self.status(info.id)
            summaries.append(
                SupplierSummary(
                    id=info.id,
                    name=info.name,
                    status=state.status,
                    reason=state.reason,
                    providers_count=len(info.providers),
                    mode=self.mode(info.id).value,
                )
            )
        return SupplierList(suppliers=summaries)

    def ibm_backends(self) -> IBMBackendList:
        mode = self.mode("ibm_quantum").value
        return IBMBackendList(
            backends=[
                IBMBackend(
                    backend_name=t.name,
                    backend_type=t.kind.value,
                    num_qubits=t.num_qubits,
                    status=target_status(t),
                    processor_family=t.provider,
                    mode=mode,
                )
                for t in supplier("ibm_quantum").targets()
            ]
        )

    def braket_devices(self) -> BraketDeviceList:
        mode = self.mode("braket").value
        return BraketDeviceList(
            devices=[
                BraketDevice(
                    name=t.name,
                    type="SIMULATOR" if t.kind.value == "simulator" else "QPU",
                    num_qubits=t.num_qubits,
                    status="ONLINE" if t.available else "RETIRED",
                    provider=t.provider,
                    arn=t.ref,
                    mode=mode,
                )
                for t in supplier("braket").targets()
            ]
        )


_child_registry: SupplierRegistry | None = None


def emulate_in_child(
    settings: Settings, target: Target, parsed: ParsedCircuit, shots: int
) -> EmulatedRun | aer.Refused:
    """Runs in a pool process: the emulation of `target` (devices and noise models cached per
    process), or its refusal. A transient error comes back as a plain exception (retried)."""
    global _child_registry
    if _child_registry is None:
        _child_registry = SupplierRegistry(settings)
    try:
        return _child_registry.adapter(target.supplier).emulate(target, parsed, shots)
    except ServiceUnavailable as exc:
        raise RuntimeError(exc.detail) from None
    except ApiError as exc:
        return aer.Refused(exc.detail, exc.error_code)
