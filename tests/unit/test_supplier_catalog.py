"""The supplier catalog and its device data files, and the rules every adapter shares."""

from __future__ import annotations

import json

import pytest

from shared.suppliers.base import DeviceKind, SupplierState, map_status, sanitise
from shared.suppliers.catalog import SUPPLIER_IDS, catalog, supplier
from shared.suppliers.devices import DEVICES_DIR, load_device


def test_every_emulated_qpu_names_a_device_file_with_its_source_and_date() -> None:
    for info in catalog().values():
        for target in info.targets():
            if target.kind in (DeviceKind.SIMULATOR, DeviceKind.ANALOG):
                continue
            if info.id == "ibm_quantum":  # IBM's come from the SDK's calibration snapshots
                assert target.calibration == "fake_" + target.name.removeprefix("ibm_")
                assert target.topology == "heavy-hex"
                continue
            device = load_device(target.calibration)
            assert device.source and device.as_of, target.name
            assert target.num_qubits == device.num_qubits


@pytest.mark.parametrize("path", sorted(DEVICES_DIR.glob("*.json")), ids=lambda p: p.name)
def test_a_device_file_is_consistent(path: object) -> None:
    data = json.loads(path.read_text())  # type: ignore[attr-defined]
    device = load_device(path.name)  # type: ignore[attr-defined]
    assert set(data) >= {"name", "source", "as_of", "notes"}
    assert 0 < device.error_1q < device.error_2q < 0.1
    assert 0 < device.readout_error < 0.1 and device.t2_s <= 2 * device.t1_s
    if device.edges is not None:
        used = {q for edge in device.edges for q in edge}
        assert used == set(range(device.num_qubits))  # every qubit is coupled to something


def test_an_unknown_supplier_or_backend_is_named_in_the_404() -> None:
    with pytest.raises(Exception) as unknown:
        supplier("dwave")
    assert getattr(unknown.value, "error_code", "") == "SUPPLIER_NOT_FOUND"
    assert all(s in str(unknown.value) for s in SUPPLIER_IDS)
    with pytest.raises(Exception) as missing:
        supplier("braket").target("sv9")
    assert getattr(missing.value, "error_code", "") == "BACKEND_NOT_FOUND"
    assert supplier("BRAKET").target("SV1").name == "sv1"  # names are case-insensitive


@pytest.mark.parametrize(
    ("raw", "state"),
    [("DONE", SupplierState.COMPLETED), ("done", SupplierState.COMPLETED), (None, None)],
)
def test_map_status_reads_any_case_and_leaves_the_unknown_unknown(
    raw: str | None, state: SupplierState | None
) -> None:
    table = {"DONE": SupplierState.COMPLETED}
    assert map_status(table, raw) is (state or SupplierState.UNKNOWN)
    assert map_status(table, "TELEPORTED") is SupplierState.UNKNOWN
    assert not SupplierState.UNKNOWN.terminal


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("AccessDenied for AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("GET https://a.blob.core/c/b?sv=2024&sig=Zm9vYmFy%3D&se=2026", "Zm9vYmFy"),
        ("X-Amz-Signature=deadbeefcafe rejected", "deadbeefcafe"),
        ("IAM failed; Authorization: apikey SECRETKEY123", "SECRETKEY123"),
        ("sent Authorization: Bearer eyJ0eXAi.abc.def", "eyJ0eXAi"),
        ('{"x-ms-quantum-api-key": "k3y-value"}', "k3y-value"),
    ],
)
def test_sanitise_masks_keys_tokens_and_signed_urls(text: str, secret: str) -> None:
    cleaned = sanitise(text + "\n  Traceback (most recent call last): ...")
    assert secret not in cleaned
    assert "\n" not in cleaned and len(cleaned) <= 500
