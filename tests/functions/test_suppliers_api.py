"""The supplier API, calling the registered functions directly against Azurite, with no
credentials configured: every supplier is emulated, and says so."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import azure.functions.queue as fq
import pytest

from shared.api import jobs, suppliers, worker
from shared.jobs.messages import JobMessage
from shared.services import Services
from shared.suppliers.backends import backend_id, supplier_target
from tests.circuits import BELL

# Different qubits flipped, bits measured out of order, two registers: qiskit's key is '1 01'.
ASYMMETRIC = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg a[2];\ncreg b[1];\n'
    "x q[0];\nx q[2];\nmeasure q[2] -> a[0];\nmeasure q[1] -> a[1];\nmeasure q[0] -> b[0];\n"
)
MID_CIRCUIT = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\nmeasure q[0] -> c[0];\ncx q[0],q[1];\nmeasure q[1] -> c[1];\n"
)


def wide(n: int) -> str:
    """A Bell pair on the first two of `n` qubits."""
    return BELL.replace("qreg q[2]", f"qreg q[{n}]").replace(
        "measure q -> c", "measure q[0] -> c[0];\nmeasure q[1] -> c[1]"
    )


def brickwork(n: int, layers: int) -> str:
    """Layers of rotations and CX between neighbours: entanglement grows with each layer."""
    body = "".join(
        "".join(f"ry(0.{layer + 3}) q[{i}];\n" for i in range(n))
        + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(layer % 2, n - 1, 2))
        for layer in range(layers)
    )
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n{body}measure q -> c;\n'
    )


def ghz(n: int) -> str:
    entangle = "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
    return (
        BELL.replace("qreg q[2]", f"qreg q[{n}]")
        .replace("creg c[2]", f"creg c[{n}]")
        .replace("cx q[0],q[1];\n", entangle)
    )


# One backend of every gate-model provider, named with the field the QCOS client uses.
ONE_PER_PROVIDER = [
    ("azure_quantum", "target", "ionq.simulator"),
    ("azure_quantum", "target", "ionq.qpu.aria-1"),
    ("azure_quantum", "target", "quantinuum.sim.h2-1e"),
    ("azure_quantum", "target", "rigetti.qpu.cepheus-1-108q"),
    ("ibm_quantum", "backend", "ibm_brisbane"),
    ("ibm_quantum", "backend", "ibm_fez"),
    ("braket", "device", "sv1"),
    ("braket", "device", "dm1"),
    ("braket", "device", "forte-1"),
    ("braket", "device", "cepheus-1-108q"),
    ("braket", "device", "garnet"),
]


def execute(http: Callable[..., Any], user: Any, supplier: str, body: dict[str, Any]) -> Any:
    return http(
        suppliers.supplier_execute,
        "POST",
        f"/api/v1/{supplier}/execute",
        body=body,
        headers=user.headers,
        route_params={"supplier": supplier},
    )


def run_queued(user_id: str, job_id: str) -> None:
    """Hand the worker function the job's queue message."""
    worker.run_job(
        fq.QueueMessage(
            id=uuid.uuid4().hex, body=JobMessage(user_id, job_id).encode().encode(), dequeue_count=1
        )
    )


def results(http: Callable[..., Any], user: Any, job_id: str) -> Any:
    return http(
        jobs.job_results,
        "GET",
        f"/api/v1/results/{job_id}",
        headers=user.headers,
        route_params={"job_id": job_id},
    )


def test_the_three_suppliers_are_listed_as_emulated_and_active_without_credentials(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a user and no supplier credentials
    user = make_user()
    # when they list the suppliers
    answer = http(suppliers.list_suppliers, "GET", "/api/v1/suppliers", headers=user.headers)
    # then the three are there, emulated and active
    assert answer.status == 200
    listed = {s["id"]: s for s in answer.body["suppliers"]}
    assert set(listed) == {"azure_quantum", "ibm_quantum", "braket"}
    assert {s["mode"] for s in listed.values()} == {"emulated"}
    assert {s["status"] for s in listed.values()} == {"active"}
    assert listed["azure_quantum"]["name"] == "Azure Quantum"
    assert listed["braket"]["providers_count"] == 5


def test_providers_list_targets_with_qubits_kind_and_price(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    # when the user lists Azure Quantum's providers
    answer = http(
        suppliers.list_providers,
        "GET",
        "/api/v1/azure_quantum/providers",
        headers=user.headers,
        route_params={"supplier": "azure_quantum"},
    )
    # then IonQ, Quantinuum and Rigetti are there with their targets
    assert answer.status == 200
    providers = {p["id"]: p for p in answer.body["providers"]}
    assert set(providers) == {"ionq", "quantinuum", "rigetti"}
    assert {"ionq.simulator", "ionq.qpu.aria-1", "ionq.qpu.forte-1"} <= set(
        providers["ionq"]["targets"]
    )
    ionq = {t["name"]: t for t in providers["ionq"]["target_details"]}
    assert ionq["ionq.qpu.aria-1"]["num_qubits"] == 25
    assert ionq["ionq.qpu.aria-1"]["connectivity"] == "all-to-all"
    assert ionq["ionq.qpu.aria-1"]["cost_model"]["unit"] == "USD"
    assert providers["ionq"]["num_qubits"] == 36
    assert providers["ionq"]["cost_model"] == "per_aqt"
    assert providers["quantinuum"]["cost_model"] == "hqc_credits"
    kinds = {t["kind"] for t in providers["quantinuum"]["target_details"]}
    assert kinds == {"syntax_checker", "emulator", "qpu"}
    assert "rigetti.sim.qvm" in providers["rigetti"]["targets"]


def test_an_analog_device_is_listed_as_such_and_refuses_circuits(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    # given Braket's listing
    answer = http(
        suppliers.list_providers,
        "GET",
        "/api/v1/braket/providers",
        headers=user.headers,
        route_params={"supplier": "braket"},
    )
    quera = next(p for p in answer.body["providers"] if p["id"] == "quera")
    assert quera["targets"] == ["aquila"]
    assert quera["target_details"][0]["gate_model"] is False
    # when a circuit is sent to it
    refused = execute(http, user, "braket", {"qasm": BELL, "device": "aquila"})
    # then it is refused with the reason
    assert refused.status == 400
    assert refused.body["error_code"] == "NOT_GATE_MODEL"
    assert "not gate-model" in refused.body["detail"]


def test_client_listing_aliases_answer_in_the_clients_shape(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    ibm = http(suppliers.ibm_backends, "GET", "/api/v1/ibm_quantum/backends", headers=user.headers)
    backends = {b["backend_name"]: b for b in ibm.body["backends"]}
    assert backends["ibm_brisbane"]["num_qubits"] == 127
    assert backends["ibm_brisbane"]["status"] == "online"
    assert backends["ibm_fez"]["backend_type"] == "qpu"
    braket = http(suppliers.braket_devices, "GET", "/api/v1/braket/devices", headers=user.headers)
    devices = {d["name"]: d for d in braket.body["devices"]}
    assert devices["sv1"]["type"] == "SIMULATOR" and devices["sv1"]["num_qubits"] == 34
    assert devices["garnet"]["type"] == "QPU" and devices["garnet"]["status"] == "ONLINE"
    assert devices["tn1"]["status"] == "RETIRED"


@pytest.mark.parametrize(
    ("fn", "path", "params"),
    [
        (suppliers.list_providers, "/api/v1/dwave/providers", {"supplier": "dwave"}),
        (suppliers.supplier_execute, "/api/v1/dwave/execute", {"supplier": "dwave"}),
    ],
)
def test_an_unknown_supplier_is_404_supplier_not_found(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    fn: Any,
    path: str,
    params: dict[str, str],
) -> None:
    user = make_user()
    method = "POST" if fn is suppliers.supplier_execute else "GET"
    body = {"qasm": BELL, "backend": "x"} if method == "POST" else None
    answer = http(fn, method, path, body=body, headers=user.headers, route_params=params)
    assert answer.status == 404
    assert answer.body["error_code"] == "SUPPLIER_NOT_FOUND"
    assert answer.body["request_id"]


def test_an_unknown_backend_is_404_and_nothing_is_stored(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    job_id = f"nb-{uuid.uuid4().hex[:8]}"
    answer = execute(
        http, user, "ibm_quantum", {"qasm": BELL, "backend": "ibm_nowhere", "job_id": job_id}
    )
    assert answer.status == 404 and answer.body["error_code"] == "BACKEND_NOT_FOUND"
    assert services_env.jobs._repo.get(user.user_id, job_id) is None  # noqa: SLF001


@pytest.mark.parametrize(
    ("supplier", "body", "code", "words"),
    [
        (
            "azure_quantum",
            {"qasm": wide(30), "target": "ionq.qpu.aria-1"},
            "CIRCUIT_DOES_NOT_FIT",
            "has 25",
        ),
        ("braket", {"qasm": MID_CIRCUIT, "device": "forte-1"}, "CIRCUIT_DOES_NOT_FIT", "end"),
        (
            "braket",
            {"qasm": brickwork(22, 30), "device": "forte-1", "shots": 1024},
            "RUN_TIME_LIMIT_EXCEEDED",
            "noise this circuit and shot count would run for about",
        ),
        (
            "braket",
            {"qasm": wide(14), "device": "dm1"},
            "CIRCUIT_DOES_NOT_FIT",
            "at most 10",
        ),
    ],
)
def test_a_circuit_that_does_not_fit_the_backend_is_400_with_the_reason(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    supplier: str,
    body: dict[str, Any],
    code: str,
    words: str,
) -> None:
    user = make_user()
    answer = execute(http, user, supplier, body)
    assert answer.status == 400
    assert answer.body["error_code"] == code
    assert words in answer.body["detail"]


def test_the_backend_field_of_another_supplier_is_422(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    answer = execute(http, user, "ibm_quantum", {"qasm": BELL, "device": "ibm_brisbane"})
    assert answer.status == 422
    assert "backend" in answer.body["detail"]
    neither = execute(http, user, "ibm_quantum", {"qasm": BELL})
    assert neither.status == 422


@pytest.mark.parametrize(("supplier", "field", "backend"), ONE_PER_PROVIDER)
def test_a_bell_circuit_runs_emulated_on_every_provider_and_says_so(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    supplier: str,
    field: str,
    backend: str,
) -> None:
    # given a user
    user = make_user()
    # when they send a Bell circuit, as the QCOS client names its fields, and the worker runs it
    accepted = execute(http, user, supplier, {"circuit": BELL, field: backend, "shots": 400})
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["job_id"]
    run_queued(user.user_id, job_id)
    # then the results are Bell counts (with the device's noise), labelled emulated
    answer = results(http, user, job_id)
    assert answer.status == 200, answer.body
    counts = answer.body["counts"]
    assert sum(counts.values()) == 400
    assert counts.get("00", 0) + counts.get("11", 0) >= 340
    meta = answer.body["metadata"]
    # (the backend named by its network id, as every answer names it)
    network_id = backend_id(supplier_target(supplier, backend))
    assert (meta["supplier"], meta["backend"], meta["mode"]) == (supplier, network_id, "emulated")
    assert meta["queue_time_ms"] >= 0 and meta["execution_time_ms"] > 0
    assert "supplier_job_id" not in meta


@pytest.mark.parametrize(
    ("supplier", "field", "backend"),
    [
        ("azure_quantum", "target", "ionq.simulator"),
        ("azure_quantum", "target", "ionq.qpu.forte-1"),
        ("azure_quantum", "target", "quantinuum.qpu.h2-1"),
        ("ibm_quantum", "backend", "ibm_torino"),
        ("braket", "device", "sv1"),
        ("braket", "device", "dm1"),
        ("braket", "device", "garnet"),
    ],
)
def test_an_asymmetric_circuit_gives_the_same_top_key_on_every_backend(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    supplier: str,
    field: str,
    backend: str,
) -> None:
    # given a circuit whose outcome differs under any bit-order mistake
    user = make_user()
    accepted = execute(http, user, supplier, {"qasm": ASYMMETRIC, field: backend, "shots": 200})
    assert accepted.status == 202, accepted.body
    # when it runs
    run_queued(user.user_id, accepted.body["job_id"])
    # then the most frequent key is qiskit's, as on the local simulator
    counts = results(http, user, accepted.body["job_id"]).body["counts"]
    assert max(counts, key=counts.get) == "1 01"


def test_a_syntax_checker_validates_and_returns_zeros(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    accepted = execute(
        http, user, "azure_quantum", {"qasm": BELL, "target": "quantinuum.sim.h2-1sc", "shots": 50}
    )
    run_queued(user.user_id, accepted.body["job_id"])
    assert results(http, user, accepted.body["job_id"]).body["counts"] == {"00": 50}


def test_a_heavy_noisy_emulation_runs_in_the_simulator_process_pool_not_in_the_host(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    from shared.suppliers import aer

    # given a 10-qubit GHZ for a noisy device (trajectories: far past the heavy-run bound)
    user = make_user()
    accepted = execute(http, user, "braket", {"qasm": ghz(10), "device": "garnet", "shots": 512})
    assert accepted.status == 202, accepted.body
    before = aer.pool_runs()
    # when the worker runs it
    run_queued(user.user_id, accepted.body["job_id"])
    # then it ran in a pool process, and its counts are GHZ's with the device's noise
    assert aer.pool_runs() == before + 1
    counts = results(http, user, accepted.body["job_id"]).body["counts"]
    assert sum(counts.values()) == 512
    assert counts.get("0" * 10, 0) + counts.get("1" * 10, 0) > 256
