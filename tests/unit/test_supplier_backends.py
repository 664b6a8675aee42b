"""`shared.suppliers.backends`: the one mapping from any backend name a client uses to the
network's backends, and the names rows stored before ids were."""

from __future__ import annotations

import pytest

from shared.errors import ApiError
from shared.ledger.repository import _query
from shared.suppliers.backends import all_backends, find, public_id, stored_names, supplier_target


@pytest.mark.parametrize(
    ("name", "backend_id"),
    [
        ("qiskit_aer", "qiskit_aer"),
        ("statevector_sim", "qiskit_aer"),
        ("simulator_aer", "qiskit_aer"),
        ("aer_simulator", "qiskit_aer"),
        ("ionq.simulator", "ionq_simulator"),
        ("ionq.aria", "ionq_qpu_aria_1"),
        ("quantinuum.h2-1", "quantinuum_qpu_h2_1"),
        ("ibm.sherbrooke", "ibm_sherbrooke"),
        ("ibm.fez", "ibm_fez"),
        ("ibm_fez", "ibm_fez"),
        ("ibm_quantum.fez", "ibm_fez"),
        ("azure_quantum.ionq_aria", "ionq_qpu_aria_1"),
        ("braket.sv1", "braket_sv1"),
        ("braket.garnet", "braket_iqm_garnet"),
        ("braket.iqm_garnet", "braket_iqm_garnet"),
        ("aws.forte-1", "braket_ionq_forte_1"),
        ("rigetti_aspen", "rigetti_aspen"),
        ("ionq.harmony", "ionq_harmony"),
        ("quantinuum.h1-1", "quantinuum_qpu_h1_1"),
        ("quantinuum.h1-2", "quantinuum_qpu_h1_2"),
    ],
)
def test_every_form_a_client_uses_finds_its_backend(name: str, backend_id: str) -> None:
    assert find(name).id == backend_id


def test_a_retired_backend_says_so_and_names_an_offered_successor() -> None:
    for backend in all_backends():
        if backend.successor is not None:
            assert backend.retired and not find(backend.successor).retired
    aspen = find("rigetti_aspen")
    assert aspen.retired and aspen.successor == "rigetti_qpu_cepheus_1_108q"


@pytest.mark.parametrize("name", ["ibm_nowhere", "ibm.heron", "braket.aria", "azure.ibm_fez"])
def test_a_name_of_no_device_is_backend_not_found(name: str) -> None:
    with pytest.raises(ApiError) as raised:
        find(name)
    assert (raised.value.status, raised.value.error_code) == (404, "BACKEND_NOT_FOUND")


def test_a_processor_family_is_refused_with_its_devices() -> None:
    with pytest.raises(ApiError) as raised:
        find("ibm.heron")
    assert "ibm_fez" in raised.value.detail


def test_a_supplier_path_resolves_through_the_same_mapping() -> None:
    assert supplier_target("azure_quantum", "ionq.aria").name == "ionq.qpu.aria-1"
    assert supplier_target("braket", "iqm_garnet").name == "garnet"
    with pytest.raises(ApiError) as retired:
        supplier_target("azure_quantum", "ionq.harmony")
    assert retired.value.error_code == "BACKEND_RETIRED"
    with pytest.raises(ApiError) as elsewhere:
        supplier_target("braket", "ionq.aria")
    assert elsewhere.value.error_code == "BACKEND_NOT_FOUND"


def test_stored_rows_name_their_backend_by_its_id_whatever_they_hold() -> None:
    assert public_id("braket", "garnet") == "braket_iqm_garnet"
    assert public_id("braket", "braket_iqm_garnet") == "braket_iqm_garnet"
    assert public_id("azure_quantum", "ionq.qpu.aria-1") == "ionq_qpu_aria_1"
    assert public_id(None, "qiskit_aer") == public_id("local", "qiskit_aer") == "qiskit_aer"
    assert public_id(None, "rerank:professional") == "rerank:professional"  # not a backend


def test_a_ledger_filter_by_backend_matches_entries_of_either_name() -> None:
    assert stored_names("braket.garnet") == ("braket_iqm_garnet", "garnet")
    query = _query({"backend": "braket_iqm_garnet"})
    assert "(backend eq 'braket_iqm_garnet' or backend eq 'garnet')" in query
