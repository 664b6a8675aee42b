"""Which adapter serves which supplier, in which mode, and whether its credentials work.

Adapters are imported on first use (`importlib`), so an HTTP function that only lists
suppliers never imports qiskit-ibm-runtime, braket or azure-quantum.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass

from shared.config import Settings
from shared.suppliers.base import Mode, SupplierAdapter, sanitise
from shared.suppliers.catalog import SUPPLIER_IDS, supplier

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
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._adapters: dict[str, SupplierAdapter] = {}
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

    def mode(self, supplier_id: str) -> Mode:
        """`cloud` when the supplier's credentials are configured, else `emulated`."""
        return Mode.CLOUD if self._configured(supplier_id) else Mode.EMULATED

    def _configured(self, supplier_id: str) -> bool:
        configs = self._settings.suppliers
        return {
            "ibm_quantum": configs.ibm.configured,
            "azure_quantum": configs.azure_quantum.configured,
            "braket": configs.braket.configured,
        }[supplier(supplier_id).id]

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
