"""End to end: the real app under funchost, over HTTP, on Azurite."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from funchost.testing import Azurite, FuncHost
from tests.circuits import BELL
from tests.e2e.gateway import key_headers, new_key

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "qcos_admin_" + "e" * 40
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def host(azurite: Azurite) -> Iterator[FuncHost]:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "QCOS_ADMIN_API_KEY": ADMIN_KEY,
        # a killed host's messages come back after 3 s instead of 30
        "FUNCHOST_QUEUE_LEASE_SECONDS": "3",
    }
    with FuncHost(ROOT, env=env) as running:
        yield running


def wait_terminal(host: FuncHost, headers: dict[str, str], job_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(f"{host.url}/api/v1/status/{job_id}", headers=headers, timeout=30)
        body = status.json()
        if body["status"] in TERMINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_a_bell_circuit_goes_through_the_queue_and_comes_back_half_00_half_11(
    host: FuncHost,
) -> None:
    headers = key_headers(new_key(host.url, ADMIN_KEY))
    accepted = requests.post(
        f"{host.url}/api/v1/execute", json={"qasm": BELL}, headers=headers, timeout=30
    )
    assert accepted.status_code == 202
    assert accepted.headers["Location"].startswith("/api/v1/status/")
    assert accepted.headers["X-Request-ID"]
    job_id = accepted.json()["job_id"]

    status = wait_terminal(host, headers, job_id)

    assert status["status"] == "completed", status
    counts = status["result"]["counts"]
    assert set(counts) == {"00", "11"} and 400 < counts["00"] < 624
    assert status["started_at"] <= status["completed_at"]
    results = requests.get(f"{host.url}/api/v1/results/{job_id}", headers=headers, timeout=30)
    assert results.json()["metadata"]["backend"] == "qiskit_aer"


def test_execute_sync_answers_the_counts_in_one_request(host: FuncHost) -> None:
    headers = key_headers(new_key(host.url, ADMIN_KEY))
    answer = requests.post(
        f"{host.url}/execute-sync", json={"qasm": BELL, "shots": 100}, headers=headers, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert sum(answer.json()["counts"].values()) == 100


def test_the_public_probes_and_the_spec_need_no_key(host: FuncHost) -> None:
    root = requests.get(f"{host.url}/", timeout=30).json()
    assert root["status"] == "healthy" and root["queue_connected"] is True and root["version"]
    assert requests.get(f"{host.url}/health", timeout=30).json() == {"status": "ok"}
    ready = requests.get(f"{host.url}/ready", timeout=30)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"tables": "ok", "queues": "ok", "blobs": "ok"}
    spec = requests.get(f"{host.url}/openapi.json", timeout=30).json()
    assert "/api/v1/execute" in spec["paths"]
    unknown = requests.get(f"{host.url}/nothing-here", timeout=30)
    assert unknown.status_code == 404


def test_a_malformed_queue_message_lands_in_poison_without_retries(
    host: FuncHost, azurite: Azurite
) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import (
        QueueClient,
        TextBase64DecodePolicy,
        TextBase64EncodePolicy,
    )

    marker = f"garbage-{uuid.uuid4().hex}"
    jobs = QueueClient.from_connection_string(
        azurite.connection_string, "jobs", message_encode_policy=TextBase64EncodePolicy()
    )
    jobs.send_message(marker)
    poison = QueueClient.from_connection_string(
        azurite.connection_string, "jobs-poison", message_decode_policy=TextBase64DecodePolicy()
    )
    deadline = time.monotonic() + 30
    found = False
    while not found and time.monotonic() < deadline:
        try:
            found = any(marker in m.content for m in poison.peek_messages(max_messages=32))
        except ResourceNotFoundError:  # not created until the first poison message
            pass
        time.sleep(0.2)
    assert found


def slow_circuit(qubits: int = 20, layers: int = 6) -> str:
    """Non-Clifford, so it runs on statevector: a few hundred ms each on 2 cores."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for layer in range(layers):
        lines += [f"ry({0.1 * (layer + 1) + i / 10}) q[{i}];" for i in range(qubits)]
        lines += [f"cx q[{i}],q[{i + 1}];" for i in range(qubits - 1)]
    lines.append("measure q -> c;")
    return "\n".join(lines)


def test_every_job_of_a_burst_ends_terminal_across_a_host_kill(host: FuncHost) -> None:
    # given a burst of jobs that take a while
    headers = key_headers(new_key(host.url, ADMIN_KEY, tier="enterprise"))
    qasm = slow_circuit()
    job_ids = []
    for _ in range(16):
        answer = requests.post(
            f"{host.url}/api/v1/execute",
            json={"qasm": qasm, "shots": 64},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 202
        job_ids.append(answer.json()["job_id"])
    last = requests.get(f"{host.url}/api/v1/status/{job_ids[-1]}", headers=headers, timeout=30)
    assert last.json()["status"] not in TERMINAL  # the kill lands mid-burst
    # when the host is killed and started again
    host.kill()
    host.start()
    # then every job ends completed (none lost, none stuck, none failed)
    finals = [wait_terminal(host, headers, job_id, timeout=120)["status"] for job_id in job_ids]
    assert finals == ["completed"] * len(job_ids)


def test_without_credentials_every_supplier_is_emulated_and_every_provider_runs_a_bell_circuit(
    host: FuncHost,
) -> None:
    # given a user and no supplier credentials
    headers = key_headers(new_key(host.url, ADMIN_KEY))
    listed = requests.get(f"{host.url}/api/v1/suppliers", headers=headers, timeout=30).json()
    assert {s["id"]: s["mode"] for s in listed["suppliers"]} == {
        "azure_quantum": "emulated",
        "ibm_quantum": "emulated",
        "braket": "emulated",
    }
    # when a Bell circuit is sent to the first gate-model target of every provider listed
    jobs: dict[str, str] = {}
    for supplier in listed["suppliers"]:
        url = f"{host.url}/api/v1/{supplier['id']}"
        providers = requests.get(f"{url}/providers", headers=headers, timeout=30).json()
        for provider in providers["providers"]:
            target = next((t for t in provider["target_details"] if t["gate_model"]), None)
            if target is None:  # an analog device: listed, and refuses circuits
                refused = requests.post(
                    f"{url}/execute",
                    json={"qasm": BELL, "backend": provider["targets"][0]},
                    headers=headers,
                    timeout=30,
                )
                assert refused.status_code == 400, refused.text
                continue
            accepted = requests.post(
                f"{url}/execute",
                json={"qasm": BELL, "backend": target["name"], "shots": 200},
                headers=headers,
                timeout=30,
            )
            assert accepted.status_code == 202, accepted.text
            jobs[f"{supplier['id']}/{target['name']}"] = accepted.json()["job_id"]
    # then each completes with Bell counts, labelled emulated
    assert len(jobs) >= 9
    for name, job_id in jobs.items():
        status = wait_terminal(host, headers, job_id, timeout=180)
        assert status["status"] == "completed", (name, status)
        counts = status["result"]["counts"]
        # Bell outcomes dominate; a noisy device's snapshot (ibm_torino: about 80% 00/11
        # in bench/supplier_emulation.py) leaves room for errors, a mixed state would give 50%.
        assert counts.get("00", 0) + counts.get("11", 0) >= 130, (name, counts)
        meta = requests.get(
            f"{host.url}/api/v1/results/{job_id}", headers=headers, timeout=30
        ).json()["metadata"]
        assert meta["mode"] == "emulated", name


RERANK_QUERY = "how do I reset my password"
RERANK_CANDIDATES = [
    "To reset your password, open Settings and choose Reset password.",
    "Open Settings and pick Reset password to reset your password.",
    "A reset link for your password is emailed to you and expires after one hour.",
    "Passwords must be at least 12 characters long.",
    "If you forgot your username, contact support to recover your account.",
    "Our office is open from 9 to 5 on weekdays.",
]


@pytest.mark.parametrize("tier", ["classic", "quantum_cpu", "quantum_gpu"])
def test_a_rerank_on_every_tier_goes_through_the_queue_and_returns_k_ranked_candidates(
    host: FuncHost, tier: str
) -> None:
    # given a user
    headers = key_headers(new_key(host.url, ADMIN_KEY))
    # when they queue a rerank on the tier
    body = {"query": RERANK_QUERY, "candidates": RERANK_CANDIDATES, "k": 3, "tier": tier}
    accepted = requests.post(f"{host.url}/rerank", json=body, headers=headers, timeout=30)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]
    # then polling Location ends with three ranked candidates and the solver's report
    deadline = time.monotonic() + 120
    while True:
        answer = requests.get(f"{host.url}{location}", headers=headers, timeout=30).json()
        if answer["status"] in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer["status"] == "completed", answer
    assert answer["tier"] == tier
    ranked = answer["ranked_candidates"]
    assert [c["rank"] for c in ranked] == [1, 2, 3]
    assert all(0 <= c["score"] <= 1 and c["text"] == RERANK_CANDIDATES[c["index"]] for c in ranked)
    solver = answer["solver"]
    assert solver["exact_optimum"] is not None and 0 < solver["approximation_ratio"] <= 1
    if tier == "classic":
        assert solver["method"] == "exact" and solver["approximation_ratio"] == 1.0
    else:
        assert solver["method"] == "qaoa" and solver["qubits"] == len(RERANK_CANDIDATES)
        assert solver["shots"] > 0 and solver["optimizer_iterations"] <= 50
    if tier == "quantum_gpu" and solver["device"] == "CPU":
        assert solver["fallback"] is True  # never pretend: no GPU here, and it says so


def test_a_bad_rerank_is_refused_over_http_with_the_standard_error(host: FuncHost) -> None:
    headers = key_headers(new_key(host.url, ADMIN_KEY))
    for body in (
        {"query": RERANK_QUERY, "candidates": RERANK_CANDIDATES, "k": 7},
        {"query": RERANK_QUERY, "candidates": ["one", ""]},
        {"query": RERANK_QUERY, "candidates": RERANK_CANDIDATES, "tier": "quantum_tpu"},
        {"query": RERANK_QUERY, "candidates": ["x" * 4001, "y"]},
        {"query": RERANK_QUERY, "candidates": [str(i) for i in range(101)]},
    ):
        answer = requests.post(f"{host.url}/rerank", json=body, headers=headers, timeout=30)
        assert answer.status_code == 422, body
        assert set(answer.json()) == {"detail", "error_code", "request_id"}
    other = requests.get(f"{host.url}/rerank/not-a-job", headers=headers, timeout=30)
    assert other.status_code == 404 and other.json()["error_code"] == "JOB_NOT_FOUND"


def test_unknown_paths_and_wrong_methods_get_the_standard_error_body_over_http(
    host: FuncHost,
) -> None:
    # given the gateway under the host stand-in (its catch-all function tried last)
    # when a path no operation has is requested, with any method
    for method in ("GET", "POST", "DELETE"):
        missing = requests.request(method, f"{host.url}/api/v1/qec/decode", timeout=30)
        # then it is the standard 404 body with the request id header
        assert missing.status_code == 404
        body = missing.json()
        assert set(body) == {"detail", "error_code", "request_id"}
        assert body["error_code"] == "NOT_FOUND"
        assert body["request_id"] == missing.headers["X-Request-ID"]
    # when a known path is asked with a method it does not take
    wrong = requests.get(f"{host.url}/api/v1/execute", timeout=30)
    # then it is 405 with Allow, and the standard body
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST, OPTIONS"
    assert wrong.json()["error_code"] == "METHOD_NOT_ALLOWED"
    assert wrong.json()["request_id"] == wrong.headers["X-Request-ID"]
    # and the operations themselves still answer
    assert requests.get(f"{host.url}/health", timeout=30).json() == {"status": "ok"}
    options = requests.options(f"{host.url}/pricing", timeout=30)
    assert options.status_code == 204 and options.headers["Allow"] == "GET, HEAD, OPTIONS"
    head = requests.head(f"{host.url}/health", timeout=30)
    assert head.status_code == 200 and head.headers["X-Request-ID"] and not head.content
