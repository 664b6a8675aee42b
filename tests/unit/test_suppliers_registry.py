"""`shared.suppliers.registry.SupplierRegistry`: which adapter serves a supplier, in which mode,
whether its credentials work, and that listing suppliers imports no adapter. Adapters here are
stand-ins passed to the registry (the real ones: test_ibm_adapter.py, test_braket_translation.py,
test_azure_quantum_adapter.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from shared.config import Settings
from shared.errors import NotFound
from shared.suppliers.base import (
    Mode,
    SubmitRequest,
    SupplierAdapter,
    SupplierState,
    Target,
    TaskState,
)
from shared.suppliers.catalog import supplier
from shared.suppliers.registry import SupplierRegistry, SupplierStatus

ROOT = Path(__file__).resolve().parents[2]
NO_CREDENTIALS = Settings.from_env({})
IBM_TOKEN = Settings.from_env({"QCOS_IBM_TOKEN": "ibm-token-for-tests"})


class Adapter:
    """A supplier's adapter that records its calls and answers as told."""

    def __init__(self, reason: str | None = None, fault: Exception | None = None) -> None:
        self.reason, self.fault = reason, fault
        self.calls: list[tuple[str, Any]] = []

    def check_credentials(self) -> str | None:
        self.calls.append(("check_credentials", None))
        if self.fault is not None:
            raise self.fault
        return self.reason

    def submit(self, request: SubmitRequest) -> str:
        self.calls.append(("submit", request.client_token))
        return "task-1"

    def poll(self, target: Target, task_id: str) -> TaskState:
        self.calls.append(("poll", task_id))
        return TaskState(SupplierState.RUNNING, "RUNNING")

    def cancel(self, target: Target, task_id: str) -> None:
        self.calls.append(("cancel", task_id))


def registry(settings: Settings, **adapters: Adapter) -> SupplierRegistry:
    return SupplierRegistry(settings, cast(dict[str, SupplierAdapter], adapters))


def brisbane() -> Target:
    return supplier("ibm_quantum").target("ibm_brisbane")


def test_a_supplier_without_credentials_is_emulated_and_active_without_being_asked() -> None:
    # given an adapter that would say its credentials fail
    ibm = Adapter(reason="401 Unauthorized")
    reg = registry(NO_CREDENTIALS, ibm_quantum=ibm)
    # when / then
    assert reg.mode("ibm_quantum") is Mode.EMULATED
    assert reg.status("ibm_quantum") == SupplierStatus("active")
    assert ibm.calls == []


def test_configured_credentials_make_a_supplier_cloud_and_a_failing_check_unavailable() -> None:
    # given IBM credentials the supplier refuses
    reg = registry(IBM_TOKEN, ibm_quantum=Adapter(reason="401 Unauthorized: token expired"))
    # when / then
    assert reg.mode("ibm_quantum") is Mode.CLOUD and reg.mode("braket") is Mode.EMULATED
    assert reg.status("ibm_quantum") == SupplierStatus(
        "unavailable", "401 Unauthorized: token expired"
    )


def test_a_check_that_raises_is_a_reason_with_its_secrets_masked_never_an_error() -> None:
    # given a check whose error quotes a signed URL
    fault = ConnectionError("GET https://api.example.com/v1?sig=SECRETSIG&se=2026 failed")
    reg = registry(IBM_TOKEN, ibm_quantum=Adapter(fault=fault))
    # when
    state = reg.status("ibm_quantum")
    # then the listing still answers, naming the error's kind but not the secret
    assert state.status == "unavailable" and state.reason is not None
    assert state.reason.startswith("ConnectionError:") and "SECRETSIG" not in state.reason


def test_a_credential_check_is_kept_for_a_while_not_made_per_listing() -> None:
    ibm = Adapter()
    reg = registry(IBM_TOKEN, ibm_quantum=ibm)
    for _ in range(5):
        assert reg.status("ibm_quantum") == SupplierStatus("active")
    assert ibm.calls == [("check_credentials", None)]


def test_every_supplier_is_listed_with_its_mode_status_and_providers() -> None:
    reg = registry(IBM_TOKEN, ibm_quantum=Adapter(reason="quota exhausted"))
    listing = {s.id: s for s in reg.list_suppliers().suppliers}
    assert set(listing) == set(reg.ids()) == {"ibm_quantum", "azure_quantum", "braket"}
    assert (listing["ibm_quantum"].mode, listing["ibm_quantum"].status) == ("cloud", "unavailable")
    assert listing["ibm_quantum"].reason == "quota exhausted"
    assert (listing["braket"].mode, listing["braket"].status) == ("emulated", "active")
    assert all(s.providers_count >= 1 for s in listing.values())


def test_calls_go_to_the_targets_suppliers_adapter() -> None:
    # given
    ibm = Adapter()
    reg = registry(IBM_TOKEN, ibm_quantum=ibm)
    target = brisbane()
    # when
    reg.poll(target, "task-9")
    reg.cancel(target, "task-9")
    # then
    assert ibm.calls == [("poll", "task-9"), ("cancel", "task-9")]


def test_an_unknown_supplier_is_not_found() -> None:
    with pytest.raises(NotFound) as missing:
        registry(NO_CREDENTIALS).adapter("dwave")
    assert missing.value.error_code == "SUPPLIER_NOT_FOUND"


def test_an_adapter_is_made_once_on_first_use() -> None:
    reg = registry(NO_CREDENTIALS)
    first = reg.adapter("braket")
    assert type(first).__name__ == "Braket"
    assert reg.adapter(" Braket ") is first


def test_the_ibm_listing_shows_its_devices_in_the_suppliers_mode() -> None:
    backends = registry(IBM_TOKEN).ibm_backends().backends
    assert "ibm_brisbane" in {b.backend_name for b in backends}
    assert {b.mode for b in backends} == {"cloud"}
    devices = registry(NO_CREDENTIALS).braket_devices().devices
    assert {d.mode for d in devices} == {"emulated"}
    assert all(d.type in ("QPU", "SIMULATOR") and d.arn for d in devices)


def test_listing_suppliers_imports_no_adapter() -> None:
    # given a fresh interpreter
    probe = (
        "import sys\n"
        "from shared.config import Settings\n"
        "from shared.pricing.listing import providers\n"
        "from shared.suppliers.registry import SupplierRegistry\n"
        "reg = SupplierRegistry(Settings.from_env({}))\n"
        "reg.list_suppliers(); providers('braket'); reg.ibm_backends()\n"
        "adapters = ('shared.suppliers.ibm', 'shared.suppliers.braket',"
        " 'shared.suppliers.azure_quantum')\n"
        "print(','.join(m for m in adapters if m in sys.modules))\n"
    )
    # when it lists the suppliers
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # then no adapter module was imported
    assert out.stdout.strip() == ""
