"""The published QCOS Python client (qcos-sdk 2.1) against the real app, over HTTP.

The client is not installable here, so `Sdk21` replays its calls as its source makes them:
both `X-API-Key` and `Authorization: Bearer` on every request; `POST {base}/execute` with
`{"qasm", "shots"}`; polling `GET {base}/status/{job_id}` until the status is terminal; and
`GET {base}/results/{job_id}` only when a completed status carries no counts. It reads
`job_id`, `status`, `counts` (top level, else under `result`), `num_qubits`, `shots`, `backend`
and `error`; 401, 404 and 429 become its own exceptions, any other error status an HTTP error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from funchost.testing import Azurite, FuncHost
from tests.circuits import BELL, GHZ3
from tests.e2e.gateway import new_key

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "qcos_admin_" + "c" * 40


class AuthenticationError(Exception):
    pass


class JobNotFoundError(Exception):
    pass


class HttpError(Exception):
    pass


@dataclass
class ClientResult:
    """The fields the client's result object takes from a body."""

    job_id: str
    status: str
    counts: dict[str, int] | None
    num_qubits: int | None
    shots: int | None
    backend: str | None
    error: Any

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> ClientResult:
        counts = body.get("counts")
        if counts is None and isinstance(body.get("result"), dict):
            counts = body["result"].get("counts")
        return cls(
            job_id=body["job_id"],
            status=body["status"],
            counts=counts,
            num_qubits=body.get("num_qubits"),
            shots=body.get("shots"),
            backend=body.get("backend"),
            error=body.get("error"),
        )

    @property
    def is_complete(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class Sdk21:
    """The HTTP calls of qcos-sdk 2.1's `QCOSClient`, made the way it makes them."""

    def __init__(self, api_key: str, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"X-API-Key": api_key, "Authorization": f"Bearer {api_key}"})
        self.calls: list[str] = []

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append(f"{method} {url.removeprefix(self.base_url)}")
        answer = self.session.request(method, url, timeout=30, **kwargs)
        if answer.status_code == 401:
            raise AuthenticationError("Invalid API key")
        if answer.status_code == 404:
            raise JobNotFoundError("Job not found")
        if answer.status_code >= 400:
            raise HttpError(f"HTTP error: {answer.status_code} {answer.text}")
        return answer

    def submit(self, qasm: str, shots: int = 1024) -> str:
        data = self._request(
            "POST", f"{self.base_url}/execute", json={"qasm": qasm, "shots": shots}
        )
        body = data.json()
        assert "job_id" in body, body  # the client raises "Unexpected response" otherwise
        return str(body["job_id"])

    def get_status(self, job_id: str) -> ClientResult:
        return ClientResult.from_dict(
            self._request("GET", f"{self.base_url}/status/{job_id}").json()
        )

    def get_result(self, job_id: str) -> ClientResult:
        return ClientResult.from_dict(
            self._request("GET", f"{self.base_url}/results/{job_id}").json()
        )

    def wait_for_result(self, job_id: str, timeout: float = 60) -> ClientResult:
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"job {job_id} did not finish"
            last = self.get_status(job_id)
            if last.is_complete:
                if last.counts is None and last.status == "completed":
                    return self.get_result(job_id)
                return last
            time.sleep(0.1)

    def execute(self, qasm: str, shots: int = 1024) -> ClientResult:
        return self.wait_for_result(self.submit(qasm, shots))


@pytest.fixture(scope="module")
def host(azurite: Azurite) -> Iterator[FuncHost]:
    env = {"AzureWebJobsStorage": azurite.connection_string, "QCOS_ADMIN_API_KEY": ADMIN_KEY}
    with FuncHost(ROOT, env=env) as running:
        yield running


@pytest.fixture
def client(host: FuncHost) -> Sdk21:
    return Sdk21(new_key(host.url, ADMIN_KEY), host.url)


def test_execute_submits_polls_and_reads_the_counts_and_what_ran(client: Sdk21) -> None:
    result = client.execute(GHZ3, shots=500)

    assert result.status == "completed"
    assert result.counts is not None and set(result.counts) == {"000", "111"}
    assert sum(result.counts.values()) == 500
    assert (result.num_qubits, result.shots, result.backend) == (3, 500, "qiskit_aer")
    assert result.error is None
    assert client.calls[0] == "POST /execute"
    assert {call.split("/")[1] for call in client.calls[1:]} == {"status"}


def test_get_result_reads_the_counts_and_what_ran_from_the_top_level(client: Sdk21) -> None:
    job_id = client.submit(BELL, shots=200)
    client.wait_for_result(job_id)

    result = client.get_result(job_id)

    assert result.job_id == job_id and result.status == "completed"
    assert result.counts is not None and set(result.counts) == {"00", "11"}
    assert (result.num_qubits, result.shots, result.backend) == (2, 200, "qiskit_aer")


def test_a_queued_job_reads_as_not_complete_with_its_shots(client: Sdk21) -> None:
    job_id = client.submit(BELL, shots=64)

    first = client.get_status(job_id)

    assert first.job_id == job_id
    assert first.status in ("queued", "processing", "completed")
    assert (first.shots, first.num_qubits, first.backend) == (64, 2, "qiskit_aer")


def test_the_aliases_answer_what_the_v1_paths_answer(client: Sdk21) -> None:
    job_id = client.submit(BELL, shots=100)
    client.wait_for_result(job_id)
    for alias, v1 in (
        (f"/status/{job_id}", f"/api/v1/status/{job_id}"),
        (f"/results/{job_id}", f"/api/v1/results/{job_id}"),
    ):
        short = client.session.get(client.base_url + alias, timeout=30)
        long = client.session.get(client.base_url + v1, timeout=30)
        assert short.status_code == long.status_code == 200
        assert short.json() == long.json()


def test_the_clients_errors_come_from_the_aliases(client: Sdk21, host: FuncHost) -> None:
    with pytest.raises(JobNotFoundError):
        client.get_status(uuid.uuid4().hex)
    with pytest.raises(AuthenticationError):
        Sdk21("qcos_0123456789abcdef_" + "x" * 43, host.url).submit(BELL)
    with pytest.raises(HttpError) as refused:
        client.submit("OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n")
    assert "400" in str(refused.value) and "INVALID_QASM" in str(refused.value)
