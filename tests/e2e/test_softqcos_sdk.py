"""The vendor's Python client (softqcos-sdk 3.13.1), unchanged, against the real app over HTTP.

Its job, backend, network, ledger and batch calls go to paths of its own (`/api/v1/runtime/...`,
`/api/v1/backends`, `/api/v1/network/...`, `/api/v1/ledger/reports/...`, `/api/v2/batch`); the
app serves them as doors of its own operations (shared/api/runtime.py). The client checks a
licence with the vendor for a local URL unless `QCOS_SKIP_LICENSE_CHECK=true`, and reads
`~/.softqcos/config.json`: HOME is a fresh folder here, and nothing leaves the machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from softqcos_sdk import QCOSClient
from softqcos_sdk.exceptions import (
    ConflictError,
    JobNotFoundError,
    ResourceNotFoundError,
    ValidationError,
)

from funchost.testing import Azurite, FuncHost
from tests.circuits import BELL, GHZ3
from tests.e2e.gateway import new_key

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "qcos_admin_" + "s" * 40
# 18 qubits measured mid-way: every shot runs on its own, about a second each.
LONG = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[18] q;\nbit[18] c;\n'
    + "rx(0.1) q[0];\ncx q[0], q[1];\nc[0] = measure q[0];\n" * 100
    + "c = measure q;\n"
)


@pytest.fixture(scope="module")
def host(azurite: Azurite) -> Iterator[FuncHost]:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "QCOS_ADMIN_API_KEY": ADMIN_KEY,
        # a batch's answer waits at most this long (the client gives up on a call after 30 s)
        "QCOS_SYNC_TIMEOUT_SECONDS": "5",
    }
    with FuncHost(ROOT, env=env) as running:
        yield running


@pytest.fixture
def client(host: FuncHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[QCOSClient]:
    monkeypatch.setenv("QCOS_SKIP_LICENSE_CHECK", "true")
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("QCOS_API_KEY", "QCOS_API_URL", "QCOS_PLATFORM_URL"):
        monkeypatch.delenv(name, raising=False)
    key = new_key(host.url, ADMIN_KEY, tier="enterprise", tenant=f"acme-{uuid.uuid4().hex[:8]}")
    with QCOSClient(api_key=key, base_url=host.url) as made:
        yield made


def test_submit_wait_result_get_and_list_a_job(client: QCOSClient) -> None:
    # when
    job = client.jobs.submit(GHZ3, shots=300, backend_id="qiskit_aer")
    done = client.jobs.wait(job["job_id"], timeout=60, poll_interval=0.2)
    result = client.jobs.result(job["job_id"])
    listed = client.jobs.list(limit=5)
    # then
    assert job["status"] == "queued"
    assert done["status"] == "completed"
    assert (done["shots"], done["backend"], done["num_qubits"]) == (300, "qiskit_aer", 3)
    counts = result["result"]["counts"]
    assert set(counts) == {"000", "111"} and sum(counts.values()) == 300
    assert client.jobs.get(job["job_id"])["result"] == result["result"]
    assert listed["jobs"][0]["job_id"] == job["job_id"]
    assert listed["jobs"][0]["location"] == f"/api/v1/status/{job['job_id']}"


def test_the_clients_default_backend_and_a_suppliers_backend_run(client: QCOSClient) -> None:
    # when: no backend_id (statevector_sim), and IBM's Sherbrooke by the client's name for it
    local = client.jobs.execute(BELL, shots=100)
    ibm = client.jobs.execute(BELL, shots=100, backend_id="ibm.sherbrooke")
    # then
    assert local["status"] == "completed" and local["backend"] == "qiskit_aer"
    assert ibm["status"] == "completed", ibm
    assert set(ibm["result"]["counts"]) <= {"00", "01", "10", "11"}
    status = client.backends.ibm_status(ibm["job_id"])
    assert status["job_id"] == ibm["job_id"] and status["status"] == "completed"


def test_cancel_stops_a_job_and_list_filters_it_by_status(client: QCOSClient) -> None:
    # given a job that runs for about 40 s
    job = client.jobs.submit(LONG, shots=40, backend_id="qiskit_aer")
    # when
    cancelled = client.jobs.cancel(job["job_id"])
    # then
    assert cancelled == {"job_id": job["job_id"], "status": "cancelled"}
    assert client.jobs.wait(job["job_id"], timeout=10)["status"] == "cancelled"
    listed = client.jobs.list(status="cancelled")
    assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]
    with pytest.raises(ConflictError):
        client.backends.braket_cancel(
            client.jobs.execute(BELL, shots=10, backend_id="qiskit_aer")["job_id"]
        )


def test_estimate_sizes_the_circuit_for_its_backend(client: QCOSClient) -> None:
    estimate = client.jobs.estimate(GHZ3, shots=1000, backend_id="qiskit_aer")
    assert [b["backend"] for b in estimate["backends"]] == ["qiskit_aer"]
    assert estimate["backends"][0]["fits"] is True
    assert estimate["shots"] == 1000


def test_backends_and_the_network_answer_in_v1_shape(client: QCOSClient) -> None:
    listed = client.backends.list()
    ids = {b["id"] for b in listed["backends"]}
    assert {"qiskit_aer", "ibm_sherbrooke", "ionq_simulator"} <= ids
    assert client.backends.get("ibm.sherbrooke")["id"] == "ibm_sherbrooke"
    with pytest.raises(ResourceNotFoundError):
        client.backends.get("no_such_device")
    status = client.network.status()
    assert status["overall_status"] in ("operational", "degraded", "down")
    topology = client.network.topology()
    assert {"nodes", "edges"} <= set(topology)
    assert {b["id"] for b in client.network.backends()["backends"]} == ids


def test_the_suppliers_listings_and_estimates_answer(client: QCOSClient) -> None:
    # the supplier listings under the names the client calls
    assert {d["name"] for d in client.backends.braket_backends()["devices"]} >= {"sv1"}
    for listing in (client.backends.azure_targets(), client.backends.azure_backends()):
        providers = {p["id"]: p for p in listing["providers"]}
        assert "ionq.simulator" in providers["ionq"]["targets"]
    assert client.network.health() == {"status": "ok"}
    # an estimate per supplier, the backend under each supplier's own field name
    for estimate, backend in (
        (client.backends.ibm_estimate(circuit=GHZ3, backend="ibm_brisbane"), "ibm_brisbane"),
        (
            client.backends.azure_estimate(circuit=GHZ3, target="ionq.simulator", shots=100),
            "ionq_simulator",
        ),
        (client.backends.braket_estimate(circuit=GHZ3, device="sv1"), "braket_sv1"),
    ):
        assert [b["backend"] for b in estimate["backends"]] == [backend]
        assert estimate["backends"][0]["fits"] is True
    with pytest.raises(ResourceNotFoundError):
        client.backends.ibm_estimate(circuit=GHZ3, backend="ionq.simulator")


def test_ledger_usage_chargeback_and_a_budget(client: QCOSClient) -> None:
    # given a charged job
    job = client.jobs.execute(BELL, shots=50, backend_id="qiskit_aer")
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    # when
    deadline = time.monotonic() + 30
    while True:
        usage = client.ledger.usage(start_date=since)
        if any(e["job_id"] == job["job_id"] for e in usage["entries"]) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.5)
    chargeback = client.ledger.chargeback(start_date=since)
    budget = client.ledger.budget_create(limit_usd=250)
    # then
    assert any(e["job_id"] == job["job_id"] for e in usage["entries"])
    assert sum(g["jobs"] for g in chargeback["groups"]) >= 1
    assert budget["limit"] == "250.00" and budget["scope"].startswith("tenant:acme-")
    with pytest.raises(ValidationError):
        client.ledger.chargeback(group_by="day")


def test_a_batch_runs_lists_and_gives_its_results(client: QCOSClient) -> None:
    # when
    submitted = client.batch.submit([BELL, GHZ3], backend="qiskit_aer", shots=100)
    batch_id = submitted["data"]["job_id"]
    deadline = time.monotonic() + 60
    while client.batch.status(batch_id)["data"]["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    results = client.batch.results(batch_id)
    listed = client.batch.list()
    # then
    circuits = results["data"]["circuits"]
    assert [c["name"] for c in circuits] == ["SDK Batch 0", "SDK Batch 1"]
    assert [j["job_id"] for j in listed["data"]["jobs"]] == [batch_id]
    with pytest.raises(ConflictError):
        client.batch.cancel(batch_id)


def test_the_clients_default_batch_backend_runs(client: QCOSClient) -> None:
    submitted: Any = client.batch.submit([BELL], shots=10)  # backend "aer"
    assert submitted["success"] is True


def test_another_users_job_is_not_found(client: QCOSClient, host: FuncHost) -> None:
    job = client.jobs.submit(BELL, shots=10, backend_id="qiskit_aer")
    with QCOSClient(api_key=new_key(host.url, ADMIN_KEY), base_url=host.url) as other:
        with pytest.raises(JobNotFoundError):
            other.jobs.get(job["job_id"])
        assert other.jobs.list()["jobs"] == []
