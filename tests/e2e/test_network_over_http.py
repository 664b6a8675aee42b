"""End to end: network jobs under funchost's durable engine, over HTTP, on Azurite.

The POST answers within `QCOS_SYNC_TIMEOUT_SECONDS` (2 s here) with the result, or 202 and the
job to poll; `finished` follows either way to the job's end.

A circuit with a `delay` is a real run-time failure on two simulator targets: the planner lets
it through (simulators are not mapped to a device), then IonQ's and Braket's translations
refuse it when the run starts, while Aer and IBM's emulation run it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from funchost.testing import Azurite, FuncHost
from tests.circuits import BELL
from tests.e2e.gateway import key_headers, new_key

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "qcos_admin_" + "n" * 40
BASE = "/api/v2/network"
DELAYED_BELL = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
    "h q[0];\ndelay[100ns] q[1];\ncx q[0], q[1];\nc = measure q;\n"
)


def heavy(n: int, salt: int) -> str:
    """A non-Clifford circuit on `n` qubits: a statevector run of some hundred milliseconds."""
    gates = "".join(f"h q[{i}];\nt q[{i}];\n" for i in range(n))
    gates += "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n'
        f"rz({salt / 1000}) q[0];\n{gates}measure q -> c;\n"
    )


@pytest.fixture(scope="module")
def host() -> Iterator[FuncHost]:
    # An Azurite of its own: routing reads every user's open jobs and the queue's depth, and
    # other tests leave jobs queued in the session's Azurite that nobody runs.
    with Azurite() as storage:
        env = {
            "AzureWebJobsStorage": storage.connection_string,
            "QCOS_ADMIN_API_KEY": ADMIN_KEY,
            "QCOS_SYNC_TIMEOUT_SECONDS": "2",
        }
        with FuncHost(ROOT, env=env) as running:
            yield running


@pytest.fixture(scope="module")
def headers(host: FuncHost) -> dict[str, str]:
    return key_headers(new_key(host.url, ADMIN_KEY, tier="enterprise"))


def finished(host: FuncHost, headers: dict[str, str], answer: Any, timeout: float = 120) -> Any:
    """The job's final view: the POST's own answer when it had finished, else polled."""
    body = answer.json()
    if answer.status_code != 202:
        return answer.status_code, body
    job_id = body["data"]["job_id"]
    assert answer.headers["Location"] == f"{BASE}/execute/{job_id}"
    deadline = time.monotonic() + timeout
    while True:
        polled = requests.get(f"{host.url}{BASE}/execute/{job_id}", headers=headers, timeout=30)
        view = polled.json()
        if view["data"]["status"] in ("completed", "failed", "cancelled"):
            return polled.status_code, view
        assert time.monotonic() < deadline, view
        time.sleep(0.2)


def execute(host: FuncHost, headers: dict[str, str], body: dict[str, Any]) -> Any:
    answer = requests.post(f"{host.url}{BASE}/execute", json=body, headers=headers, timeout=120)
    return finished(host, headers, answer)


def error_code(status: int, body: dict[str, Any]) -> str:
    """The job's error code, whether the POST answered it or a poll found the job failed."""
    if body["success"] is False:
        return str(body["error_code"])
    return str(body["data"]["error"]["error_code"])


def test_a_fan_out_runs_every_backend_and_merges_their_counts(
    host: FuncHost, headers: dict[str, str]
) -> None:
    # given three emulated backends and the local simulator
    body = {
        "qasm": BELL,
        "backends": ["qiskit_aer", "ionq_simulator", "ibm_brisbane", "braket_sv1"],
        "strategy": "all",
        "shots": 1000,
        "aggregation_method": "weighted_average",
    }
    # when
    status, answer = execute(host, headers, body)
    # then
    assert status == 200, answer
    job = answer["data"]
    assert job["status"] == "completed" and job["failed"] == []
    assert [r["backend"] for r in job["results"]] == body["backends"]
    assert all(sum(r["counts"].values()) == 1000 for r in job["results"])
    assert {r["mode"] for r in job["results"]} == {"local", "emulated"}
    assert sum(job["aggregated_counts"].values()) == 1000
    assert job["aggregated_counts"]["00"] + job["aggregated_counts"]["11"] > 900
    assert 0.5 < job["aggregation_confidence"] <= 1.0
    assert job["weights"]["ibm_brisbane"] < job["weights"]["qiskit_aer"]  # lower fidelity
    assert abs(sum(job["weights"].values()) - 1.0) < 1e-9


def test_a_fan_out_where_one_backend_fails_completes_with_the_others(
    host: FuncHost, headers: dict[str, str]
) -> None:
    # given IonQ's simulator, which refuses the delay when its run starts, and ibm_kyiv,
    # whose mapping refuses it at planning
    body = {
        "qasm": DELAYED_BELL,
        "backends": ["qiskit_aer", "ionq_simulator", "ibm_brisbane", "ibm_kyiv"],
        "strategy": "all",
        "shots": 500,
    }
    # when
    status, answer = execute(host, headers, body)
    # then the others' results come back, each failure named with its reason
    assert status == 200, answer
    job = answer["data"]
    assert job["status"] == "completed"
    assert [r["backend"] for r in job["results"]] == ["qiskit_aer", "ibm_brisbane"]
    assert [(f["backend"], f["error_code"]) for f in job["failed"]] == [
        ("ionq_simulator", "CIRCUIT_DOES_NOT_FIT"),
        ("ibm_kyiv", "CIRCUIT_DOES_NOT_FIT"),
    ]
    assert "delay" in job["failed"][0]["detail"]
    assert sum(job["aggregated_counts"].values()) == 500


def test_when_every_backend_fails_the_job_is_all_backends_failed(
    host: FuncHost, headers: dict[str, str]
) -> None:
    body = {"qasm": DELAYED_BELL, "backends": ["ionq_simulator", "braket_sv1"], "strategy": "all"}
    status, answer = execute(host, headers, body)
    assert error_code(status, answer) == "ALL_BACKENDS_FAILED"
    if answer["success"] is False:  # answered by the POST itself
        assert status == 503
        assert {f["backend"] for f in answer["failed"]} == {"ionq_simulator", "braket_sv1"}


def test_ordered_falls_over_to_the_next_backend(host: FuncHost, headers: dict[str, str]) -> None:
    body = {
        "qasm": DELAYED_BELL,
        "backends": ["ionq_simulator", "qiskit_aer"],
        "strategy": "ordered",
        "shots": 200,
    }
    status, answer = execute(host, headers, body)
    assert status == 200, answer
    job = answer["data"]
    assert (job["backend"], sum(job["counts"].values())) == ("qiskit_aer", 200)
    assert [f["backend"] for f in job["failed"]] == ["ionq_simulator"]


def test_single_backend_strategies_answer_with_the_chosen_backends_counts(
    host: FuncHost, headers: dict[str, str]
) -> None:
    for strategy in ("fastest", "best_fidelity", "cost_optimized", "round_robin"):
        body = {
            "qasm": BELL,
            "backends": ["ibm_torino", "ibm_kyiv", "qiskit_aer"],
            "strategy": strategy,
            "shots": 300,
        }
        status, answer = execute(host, headers, body)
        assert status == 200, answer
        job = answer["data"]
        assert set(job) >= {"job_id", "backend", "status", "counts"}
        assert job["queue_time_s"] >= 0 and job["execution_time_s"] >= 0
        assert sum(job["counts"].values()) == 300
        if strategy in ("fastest", "best_fidelity", "cost_optimized"):
            assert job["backend"] == "qiskit_aer", strategy


def test_round_robin_takes_turns_across_requests(host: FuncHost, headers: dict[str, str]) -> None:
    body = {"qasm": BELL, "backends": ["qiskit_aer", "braket_sv1"], "strategy": "round_robin"}
    chosen = [execute(host, headers, body)[1]["data"]["backend"] for _ in range(2)]
    assert sorted(chosen) == ["braket_sv1", "qiskit_aer"]


def test_agreement_below_min_confidence_is_aggregation_failed_with_the_distributions(
    host: FuncHost, headers: dict[str, str]
) -> None:
    body = {
        "qasm": BELL,
        "backends": ["qiskit_aer", "ibm_torino"],
        "strategy": "all",
        "min_confidence": 0.9999,
    }
    status, answer = execute(host, headers, body)
    assert error_code(status, answer) == "AGGREGATION_FAILED"
    found = answer if answer["success"] is False else answer["data"]
    assert set(found["distributions"]) == {"qiskit_aer", "ibm_torino"}
    if answer["success"] is False:
        assert status == 500


def test_errors_are_clear_and_nothing_is_started(host: FuncHost, headers: dict[str, str]) -> None:
    url = f"{host.url}{BASE}/execute"
    bad = requests.post(url, json={"qasm": BELL, "strategy": "quickest"}, headers=headers)
    assert (bad.status_code, bad.json()["error_code"]) == (400, "INVALID_STRATEGY")
    unknown = requests.post(url, json={"qasm": BELL, "backends": ["ibm_nowhere"]}, headers=headers)
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "BACKEND_NOT_FOUND")
    analog = requests.post(
        url, json={"qasm": BELL, "backends": ["braket_quera_aquila"]}, headers=headers
    )
    assert (analog.status_code, analog.json()["error_code"]) == (400, "CIRCUIT_DOES_NOT_FIT")
    retired = requests.post(url, json={"qasm": BELL, "backends": ["braket_tn1"]}, headers=headers)
    assert (retired.status_code, retired.json()["error_code"]) == (503, "NO_BACKENDS")
    everything = requests.post(url, json={"qasm": BELL, "strategy": "all"}, headers=headers)
    assert (everything.status_code, everything.json()["error_code"]) == (400, "TOO_MANY_BACKENDS")
    assert all(not r.json()["success"] for r in (bad, unknown, analog, retired, everything))


def test_a_batch_routes_each_circuit_and_answers_per_circuit(
    host: FuncHost, headers: dict[str, str]
) -> None:
    body = {
        "circuits": [{"qasm": BELL, "name": "bell"}, {"qasm": heavy(3, 1), "shots": 50}],
        "backends": ["qiskit_aer", "braket_sv1"],
        "strategy": "fastest",
        "shots": 100,
    }
    answer = requests.post(f"{host.url}{BASE}/execute/batch", json=body, headers=headers)
    status, view = finished(host, headers, answer)
    assert status == 200, view
    circuits = view["data"]["circuits"]
    assert [c["name"] for c in circuits] == ["bell", "circuit-1"]
    assert [sum(c["results"][0]["counts"].values()) for c in circuits] == [100, 50]
    assert all(c["status"] == "completed" for c in circuits)


def test_a_cancelled_batch_stops_and_what_never_ran_is_not_run(
    host: FuncHost, headers: dict[str, str]
) -> None:
    # given a batch bigger than the host runs at once, of runs that each take a while
    circuits = [{"qasm": heavy(20, i), "shots": 1} for i in range(40)]
    body = {"circuits": circuits, "backends": ["qiskit_aer"], "strategy": "fastest"}
    answer = requests.post(f"{host.url}{BASE}/execute/batch", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["data"]["job_id"]
    # when
    cancelled = requests.delete(f"{host.url}{BASE}/execute/{job_id}", headers=headers, timeout=60)
    # then
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"] == {"job_id": job_id, "status": "cancelled"}
    time.sleep(3)
    view = requests.get(f"{host.url}{BASE}/execute/{job_id}", headers=headers, timeout=60).json()
    assert view["data"]["status"] == "cancelled"
    progress = view["data"]["progress"]
    assert progress["runs_planned"] == 40 and progress["runs_started"] < 40
    again = requests.delete(f"{host.url}{BASE}/execute/{job_id}", headers=headers, timeout=60)
    assert again.status_code == 200


# 18 qubits measured mid-way: every shot runs on its own, about a second each.
LONG = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[18] q;\nbit[18] c;\n'
    + "rx(0.1) q[0];\ncx q[0], q[1];\nc[0] = measure q[0];\n" * 100
    + "c = measure q;\n"
)


def test_cancelling_a_network_job_stops_its_running_run(
    host: FuncHost, headers: dict[str, str]
) -> None:
    # given a fan-out whose one run takes about half a minute, started
    body = {"qasm": LONG, "shots": 40, "backends": ["qiskit_aer"], "strategy": "all"}
    answer = requests.post(f"{host.url}{BASE}/execute", json=body, headers=headers, timeout=60)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["data"]["job_id"]
    run = f"{host.url}/api/v1/status/{job_id}-0-0"
    deadline = time.monotonic() + 60
    while requests.get(run, headers=headers, timeout=30).json().get("status") != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # when
    cancelled = requests.delete(f"{host.url}{BASE}/execute/{job_id}", headers=headers, timeout=60)
    # then the job and its run are cancelled, and the run does not go on to complete
    assert cancelled.status_code == 200, cancelled.text
    assert requests.get(run, headers=headers, timeout=30).json()["status"] == "cancelled"
    time.sleep(5)
    view = requests.get(f"{host.url}{BASE}/execute/{job_id}", headers=headers, timeout=60).json()
    assert view["data"]["status"] == "cancelled"
    assert requests.get(run, headers=headers, timeout=30).json()["status"] == "cancelled"


def test_another_users_network_job_is_not_found(host: FuncHost, headers: dict[str, str]) -> None:
    status, answer = execute(host, headers, {"qasm": BELL, "backends": ["qiskit_aer"]})
    job_id = answer["data"]["job_id"]
    theirs = key_headers(new_key(host.url, ADMIN_KEY, tier="free"))
    for method in ("GET", "DELETE"):
        found = requests.request(method, f"{host.url}{BASE}/execute/{job_id}", headers=theirs)
        assert (found.status_code, found.json()["error_code"]) == (404, "JOB_NOT_FOUND")
