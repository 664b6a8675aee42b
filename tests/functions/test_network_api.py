"""The v2 network API's read endpoints, aggregation and estimates, calling the registered
functions directly against Azurite (no credentials: every supplier is emulated). Execution,
batches and cancel run through the durable engine: tests/e2e/test_network_over_http.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.api import network
from shared.services import Services
from tests.circuits import BELL

BASE = "/api/v2/network"


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user("professional")


def data(answer: Any) -> Any:
    assert answer.body["success"] is True, answer.body
    return answer.body["data"]


def test_backends_list_every_supplier_target_and_the_local_simulator(
    user: Any, http: Callable[..., Any]
) -> None:
    # when
    answer = http(network.network_backends, "GET", f"{BASE}/backends", headers=user.headers)
    # then
    assert answer.status == 200
    listed = {b["id"]: b for b in data(answer)["backends"]}
    assert {"qiskit_aer", "ionq_simulator", "ibm_brisbane", "braket_sv1"} <= set(listed)
    assert {b["supplier"] for b in listed.values()} == {
        "local",
        "azure_quantum",
        "ibm_quantum",
        "braket",
    }
    brisbane = listed["ibm_brisbane"]
    assert (brisbane["qubits"], brisbane["mode"], brisbane["status"]) == (127, "emulated", "online")
    assert "ecr" in brisbane["native_gates"] and brisbane["price"]["per_minute"] == 96.0
    assert listed["braket_tn1"]["status"] == "retired"  # at the supplier: never run
    assert listed["rigetti_aspen"]["status"] == "retired"
    assert listed["rigetti_aspen"]["successor"] == "rigetti_qpu_cepheus_1_108q"


def test_one_backend_resolves_by_id_or_by_the_suppliers_name(
    user: Any, http: Callable[..., Any]
) -> None:
    for name in ("ionq_simulator", "ionq.simulator"):
        answer = http(
            network.network_backend,
            "GET",
            f"{BASE}/backends/{name}",
            headers=user.headers,
            route_params={"backend_id": name},
        )
        assert answer.status == 200
        assert data(answer)["target"] == "ionq.simulator"


def test_an_unknown_backend_is_404_in_the_v2_error_envelope(
    user: Any, http: Callable[..., Any]
) -> None:
    answer = http(
        network.network_backend,
        "GET",
        f"{BASE}/backends/nope",
        headers=user.headers,
        route_params={"backend_id": "nope"},
    )
    assert answer.status == 404
    assert answer.body["success"] is False
    assert answer.body["error_code"] == "BACKEND_NOT_FOUND"
    assert answer.body["request_id"] and answer.body["detail"]


def test_calibration_gives_per_qubit_and_per_gate_figures_with_their_source(
    user: Any, http: Callable[..., Any]
) -> None:
    def calibration(backend: str) -> Any:
        return data(
            http(
                network.network_calibration,
                "GET",
                f"{BASE}/backends/{backend}/calibration",
                headers=user.headers,
                route_params={"backend_id": backend},
            )
        )

    ibm = calibration("ibm_brisbane")
    assert ibm["kind"] == "snapshot" and "fake_brisbane" in ibm["source"]
    assert ibm["timestamp"].startswith("20") and len(ibm["qubits"]) == 127
    assert all(q["t1_us"] > 0 and 0 <= q["readout_error"] < 1 for q in ibm["qubits"])
    assert {g["gate"] for g in ibm["gates"]} >= {"ecr", "sx"}
    ionq = calibration("ionq_qpu_forte_1")
    assert ionq["kind"] == "data_file" and ionq["timestamp"]
    assert ionq["gates"][0]["qubits"] is None  # a median for every qubit
    assert calibration("qiskit_aer")["kind"] == "ideal"


def test_queue_status_metrics_and_topology_answer_with_their_shapes(
    user: Any, http: Callable[..., Any]
) -> None:
    queue = data(
        http(
            network.network_queue,
            "GET",
            f"{BASE}/backends/qiskit_aer/queue",
            headers=user.headers,
            route_params={"backend_id": "qiskit_aer"},
        )
    )
    assert set(queue) >= {"queue_depth", "estimated_wait_s"}
    status = data(http(network.network_status, "GET", f"{BASE}/status", headers=user.headers))
    assert status["overall_status"] == "operational"  # tn1 is retired, not down
    assert status["total_capacity"] > 1000 and status["active_jobs"] >= 0
    assert {"id", "status", "queue_depth"} == set(status["backends"][0])
    metrics = data(http(network.network_metrics, "GET", f"{BASE}/metrics", headers=user.headers))
    assert set(metrics["last_hour"]) >= {
        "jobs_by_status",
        "throughput_per_minute",
        "success_rate",
        "shots_executed",
        "backends",
    }
    topology = data(http(network.network_topology, "GET", f"{BASE}/topology", headers=user.headers))
    nodes = {n["id"]: n for n in topology["nodes"]}
    assert nodes["supplier:ibm_quantum"]["type"] == "supplier"
    assert [127 > max(pair) for pair in nodes["ibm_brisbane"]["coupling"]][0]
    assert nodes["ionq_qpu_forte_1"]["coupling"] == "all-to-all"
    assert {"source": "provider:ibm_quantum/eagle", "target": "ibm_brisbane"} in topology["edges"]


def test_aggregate_merges_counts_to_the_shots_with_a_confidence(
    user: Any, http: Callable[..., Any]
) -> None:
    body = {
        "results": [
            {"backend": "a", "counts": {"00": 500, "11": 500}},
            {"backend": "b", "counts": {"00": 500, "11": 500}},
        ],
        "method": "median",
    }
    merged = data(
        http(
            network.network_aggregate, "POST", f"{BASE}/aggregate", body=body, headers=user.headers
        )
    )
    assert merged["aggregated_counts"] == {"00": 500, "11": 500}
    assert merged["aggregation_confidence"] == 1.0
    assert merged["weights"] == {"a": 0.5, "b": 0.5}


def test_an_unknown_aggregation_method_is_400(user: Any, http: Callable[..., Any]) -> None:
    body = {"results": [{"backend": "a", "counts": {"0": 1}}], "method": "mean"}
    answer = http(
        network.network_aggregate, "POST", f"{BASE}/aggregate", body=body, headers=user.headers
    )
    assert (answer.status, answer.body["error_code"]) == (400, "INVALID_AGGREGATION_METHOD")


def test_aggregation_methods_are_listed_with_what_each_does(
    user: Any, http: Callable[..., Any]
) -> None:
    listed = data(
        http(
            network.network_aggregation_methods,
            "GET",
            f"{BASE}/aggregate/methods",
            headers=user.headers,
        )
    )
    names = [m["name"] for m in listed["methods"]]
    assert names == ["weighted_average", "majority_vote", "confidence_weighted", "median"]
    assert "best backend" in listed["note"]


def test_estimate_prices_the_run_and_says_what_each_strategy_would_choose(
    user: Any, http: Callable[..., Any]
) -> None:
    # given the worked examples
    body = {
        "qasm": BELL,
        "shots": 1000,
        "backends": ["braket_ionq_forte_1", "ionq_qpu_forte_1", "ibm_brisbane", "qiskit_aer"],
    }
    # when
    answer = http(
        network.network_estimate, "POST", f"{BASE}/estimate", body=body, headers=user.headers
    )
    # then
    assert answer.status == 200
    found = {e["backend"]: e for e in data(answer)["backends"]}
    forte = found["braket_ionq_forte_1"]
    assert forte["fits"] and forte["device_cost"]["amount"] == 80.30
    assert forte["cost"]["amount"] == 0.0 and forte["mode"] == "emulated"
    assert found["ionq_qpu_forte_1"]["device_cost"]["amount"] == 13.61
    assert found["ionq_qpu_forte_1"]["device_cost"]["pricebook_version"]
    assert 0.5 < found["ibm_brisbane"]["fidelity"] < 1.0
    assert found["qiskit_aer"]["fidelity"] == 1.0
    strategies = data(answer)["strategies"]
    assert strategies["best_fidelity"] == "qiskit_aer"
    assert strategies["cost_optimized"] == "qiskit_aer"
    assert set(strategies["all"]) == set(found)


def test_estimate_says_why_a_circuit_does_not_fit(user: Any, http: Callable[..., Any]) -> None:
    wide = BELL.replace("qreg q[2]", "qreg q[30]").replace(
        "measure q -> c", "measure q[0] -> c[0];\nmeasure q[1] -> c[1]"
    )
    body = {"qasm": wide, "shots": 10, "backends": ["braket_iqm_garnet", "braket_dm1"]}
    found = data(
        http(network.network_estimate, "POST", f"{BASE}/estimate", body=body, headers=user.headers)
    )["backends"]
    assert [e["fits"] for e in found] == [False, False]
    assert "30 qubits" in found[0]["reasons"][0]


def test_network_endpoints_need_an_api_key(
    services_env: Services, http: Callable[..., Any]
) -> None:
    answer = http(network.network_status, "GET", f"{BASE}/status")
    assert answer.status == 401 and answer.body["success"] is False


def ghz(n: int) -> str:
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\nh q[0];\n'
        + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
        + "measure q -> c;\n"
    )


@pytest.mark.parametrize(
    ("supplier", "field", "backend", "backend_id"),
    [
        ("ibm_quantum", "backend", "ibm_brisbane", "ibm_brisbane"),
        ("braket", "device", "garnet", "braket_iqm_garnet"),
        (None, None, None, "qiskit_aer"),
    ],
)
def test_a_submit_answers_the_run_time_the_estimate_gives_for_the_same_run(
    supplier: str | None,
    field: str | None,
    backend: str | None,
    backend_id: str,
    user: Any,
    http: Callable[..., Any],
) -> None:
    import math

    from shared.api import jobs, suppliers

    # given what the network estimate says of a GHZ-12 run on an emulated device
    qasm, shots = ghz(12), 4000
    body = {"qasm": qasm, "shots": shots, "backends": [backend_id]}
    found = data(
        http(network.network_estimate, "POST", f"{BASE}/estimate", body=body, headers=user.headers)
    )["backends"][0]
    assert found["fits"], found
    run_s = found["estimated_run_s"]
    # when the same run is submitted to that backend
    if supplier is None:
        answer = http(
            jobs.execute,
            "POST",
            "/api/v1/execute",
            headers=user.headers,
            body={"qasm": qasm, "shots": shots},
        )
    else:
        answer = http(
            suppliers.supplier_execute,
            "POST",
            f"/api/v1/{supplier}/execute",
            headers=user.headers,
            route_params={"supplier": supplier},
            body={"qasm": qasm, "shots": shots, field: backend},
        )
    # then the time it answers is that run's, after an empty queue's wait (under a second)
    assert answer.status == 202, answer.body
    assert math.ceil(run_s) <= answer.body["estimated_time_seconds"] <= math.ceil(run_s) + 1
