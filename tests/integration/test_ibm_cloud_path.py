"""`shared.suppliers.ibm` on its real path: qiskit-ibm-runtime 0.51.0 itself, offline, against a
`responses` fake of the HTTP APIs it calls. Nothing of the SDK is mocked; only HTTP is.

The calls, read from the SDK's sources (`api/rest/*.py`, `accounts/account.py`, `api/auth.py`)
and served by `FakeIBMCloud`, with {api} = https://quantum.cloud.ibm.com/api/v1 (a us-east CRN):
- `QiskitRuntimeService(channel, token, instance)`: POST iam.cloud.ibm.com/identity/token (the
  API key for a JWT, once per client), POST api.global-search-tagging.cloud.ibm.com/v3/resources/
  search (the account's instances), GET globalcatalog.cloud.ibm.com/api/v1/{plan id}, GET
  {api}/backends;
- `service.jobs(job_tags=[...])`: GET {api}/jobs?tags=...; every job it returns and
  `service.backend(name)`: GET {api}/backends/{name}/configuration (the backend's target adds
  GET .../properties);
- `SamplerV2.run`: GET {api}/instances/usage, GET {api}/backends/{name}/status, POST {api}/jobs;
- `service.job(id)` and `job.status()`: GET {api}/jobs/{id}; a failed job's message and a done
  job's result: GET {api}/jobs/{id}/results (RuntimeEncoder JSON); its timings: GET
  {api}/jobs/{id}/metrics; cancel: POST {api}/jobs/{id}/cancel.
The backend's configuration and properties are the fake_provider's own files for Brisbane; a job's
result is what a qiskit sampler gives for the circuit the adapter posted, encoded as IBM sends it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.suppliers.base import (
    SubmitRequest,
    SupplierRejected,
    SupplierState,
    SupplierUnavailable,
    Target,
)
from shared.suppliers.catalog import supplier
from shared.suppliers.ibm import IBMQuantum
from tests.circuits import BELL

pytestmark = pytest.mark.filterwarnings(
    "ignore:The SamplerV2 class is deprecated:DeprecationWarning"
)

API_KEY = "ibm-api-key-" + "s3cr3t" * 6
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123456789abcdef:qcos-instance::"
API = "https://quantum.cloud.ibm.com/api/v1"
IAM_TOKEN_URL = "https://iam.cloud.ibm.com/identity/token"
SEARCH_URL = "https://api.global-search-tagging.cloud.ibm.com/v3/resources/search"
CATALOG = "https://globalcatalog.cloud.ibm.com/api/v1"
PLAN_ID = "plan-open"
BACKEND = "ibm_brisbane"
V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
# Deterministic and asymmetric: a[0] = 1, b = (b1, b0) = (1, 0); qiskit's key is "10 1".
TWO_REGISTERS = (
    V2 + "qreg q[3];\ncreg a[1];\ncreg b[2];\nx q[0];\nx q[2];\n"
    "measure q[0] -> a[0];\nmeasure q[1] -> b[0];\nmeasure q[2] -> b[1];\n"
)
NO_MEASUREMENT = V2 + "qreg q[3];\nx q[0];\nx q[2];\n"
ISA_OPERATIONS = {"ecr", "rz", "sx", "x", "id", "measure", "barrier", "delay", "reset"}


def parsed(qasm: str) -> ParsedCircuit:
    return parse_circuit(qasm, CircuitLimits(262_144, 127, 1024, 1_000_000, 100_000))


def fake_jwt() -> str:
    """An IAM access token: a JWT whose `exp` the SDK reads (it never checks the signature)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iat": now, "exp": now + 3600, "sub": "qcos-test"}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def fake_backend_file(kind: str) -> dict[str, Any]:
    """Brisbane's configuration (`conf`) or properties (`props`), as fake_provider ships them."""
    import qiskit_ibm_runtime.fake_provider as fake_provider

    folder = Path(fake_provider.__file__).parent / "backends" / "brisbane"
    data: dict[str, Any] = json.loads((folder / f"{kind}_brisbane.json").read_text())
    data["backend_name"] = BACKEND
    return data


def run_on_qiskit(params: dict[str, Any]) -> str:
    """What IBM's sampler returns for the posted pubs: qiskit's `BackendSamplerV2` on Aer (the
    circuit cut down to its active qubits), encoded with the SDK's `RuntimeEncoder`."""
    from qiskit.converters import circuit_to_dag, dag_to_circuit
    from qiskit.primitives import BackendSamplerV2
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime import RuntimeEncoder

    pubs = []
    for circuit, _values, shots in params["pubs"]:
        dag = circuit_to_dag(circuit)
        dag.remove_qubits(*[w for w in dag.idle_wires() if w in dag.qubits])
        pubs.append((dag_to_circuit(dag), None, shots))
    sampler = BackendSamplerV2(backend=AerSimulator(seed_simulator=11))
    return json.dumps(sampler.run(pubs).result(), cls=RuntimeEncoder)


@dataclass
class FakeJob:
    id: str
    backend: str
    tags: list[str]
    params: dict[str, Any]
    status: str = "Queued"
    reason: str | None = None
    reason_code: int | None = None
    results: str = ""

    def as_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {"status": self.status}
        if self.reason:
            state["reason"] = self.reason
            state["reason_code"] = self.reason_code
        return {
            "id": self.id,
            "backend": self.backend,
            "state": state,
            "status": self.status,
            "program": {"id": "sampler"},
            "created": "2026-11-21T10:00:00Z",
            "tags": self.tags,
            "runtime": "",
        }


@dataclass
class FakeIBMCloud:
    """IAM, Global Search and Catalog, and IBM Quantum's REST API, as the adapter uses them."""

    jobs: dict[str, FakeJob] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)  # POST /jobs bodies, decoded
    calls: list[str] = field(default_factory=list)  # "METHOD url-without-query"
    unhandled: list[str] = field(default_factory=list)
    # "METHOD path-regex" -> statuses to answer (one per call) before the real answer.
    failures: dict[str, list[int]] = field(default_factory=dict)

    def fail(self, method: str, url_pattern: str, status: int, times: int = 1) -> None:
        self.failures[f"{method} {url_pattern}"] = [status] * times

    def count(self, method: str, url: str) -> int:
        return self.calls.count(f"{method} {url}")

    def finish(self, job_id: str) -> None:
        """The job completes with the result of the circuit that was posted."""
        job = self.jobs[job_id]
        job.status = "Completed"
        job.results = run_on_qiskit(job.params)

    def handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(str(request.url))
        url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        query = parse_qs(parts.query)
        method = str(request.method)
        self.calls.append(f"{method} {url}")
        for key, statuses in self.failures.items():
            wanted_method, pattern = key.split(" ", 1)
            if statuses and wanted_method == method and re.fullmatch(pattern, url):
                status = statuses.pop(0)
                error = {"errors": [{"code": str(status), "message": f"injected {status}"}]}
                return status, {"Content-Type": "application/json"}, json.dumps(error)
        for route_method, pattern, answer in self._routes():
            found = re.fullmatch(pattern, url)
            if route_method == method and found:
                status, body = answer(request, query, *found.groups())
                text = body if isinstance(body, str) else json.dumps(body)
                return status, {"Content-Type": "application/json"}, text
        self.unhandled.append(f"{method} {request.url}")
        return 404, {"Content-Type": "application/json"}, '{"errors": [{"message": "no route"}]}'

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        return [
            ("POST", re.escape(IAM_TOKEN_URL), self._iam_token),
            ("POST", re.escape(SEARCH_URL), self._search),
            ("GET", re.escape(f"{CATALOG}/{PLAN_ID}"), self._catalog),
            ("GET", re.escape(f"{API}/backends"), self._backends),
            (
                "GET",
                re.escape(f"{API}/backends/") + r"([^/]+)/(configuration|properties)",
                self._file,
            ),
            ("GET", re.escape(f"{API}/backends/") + r"([^/]+)/status", self._backend_status),
            ("GET", re.escape(f"{API}/instances/usage"), self._usage),
            ("POST", re.escape(f"{API}/jobs"), self._post_job),
            ("GET", re.escape(f"{API}/jobs"), self._list_jobs),
            ("GET", re.escape(f"{API}/jobs/") + r"([^/]+)", self._job),
            ("GET", re.escape(f"{API}/jobs/") + r"([^/]+)/results", self._results),
            ("GET", re.escape(f"{API}/jobs/") + r"([^/]+)/metrics", self._metrics),
            ("POST", re.escape(f"{API}/jobs/") + r"([^/]+)/cancel", self._cancel),
        ]

    def _iam_token(self, request: Any, query: Any) -> tuple[int, Any]:
        form = parse_qs(str(request.body))
        if form.get("apikey") != [API_KEY]:
            return 400, {
                "errorCode": "BXNIM0415E",
                "errorMessage": "Provided API key could not be found.",
            }
        expires = int(time.time()) + 3600
        token = fake_jwt()
        return 200, {
            "access_token": token,
            "refresh_token": "not-used",
            "token_type": "Bearer",
            "expires_in": 3600,
            "expiration": expires,
        }

    def _search(self, request: Any, query: Any) -> tuple[int, Any]:
        item = {
            "crn": CRN,
            "service_plan_unique_id": PLAN_ID,
            "name": "qcos-instance",
            "doc": {"extensions": {"quantum_computing": {"allocation": 1}}},
            "tags": [],
        }
        return 200, {"items": [item], "search_cursor": None}

    def _catalog(self, request: Any, query: Any) -> tuple[int, Any]:
        return 200, {
            "overview_ui": {"en": {"display_name": "Open"}},
            "metadata": {"pricing": {"type": "free"}},
        }

    def _backends(self, request: Any, query: Any) -> tuple[int, Any]:
        device = {"name": BACKEND, "status": {"name": "online"}, "qubits": 127, "queue_length": 0}
        return 200, {"devices": [device]}

    def _file(self, request: Any, query: Any, name: str, kind: str) -> tuple[int, Any]:
        if name != BACKEND:
            return 404, {"errors": [{"message": f"backend {name} not found"}]}
        return 200, fake_backend_file("conf" if kind == "configuration" else "props")

    def _backend_status(self, request: Any, query: Any, name: str) -> tuple[int, Any]:
        return 200, {"state": True, "status": "active", "length_queue": 2}

    def _usage(self, request: Any, query: Any) -> tuple[int, Any]:
        return 200, {"usage_consumed_seconds": 12, "usage_limit_reached": False}

    def _post_job(self, request: Any, query: Any) -> tuple[int, Any]:
        from qiskit_ibm_runtime import RuntimeDecoder

        body = json.loads(str(request.body), cls=RuntimeDecoder)
        self.posted.append(body)
        job = FakeJob(
            id=f"ibm-{uuid.uuid4().hex[:20]}",
            backend=body["backend"],
            tags=list(body.get("tags", [])),
            params=body["params"],
        )
        self.jobs[job.id] = job
        return 200, {"id": job.id, "backend": job.backend}

    def _list_jobs(self, request: Any, query: Any) -> tuple[int, Any]:
        tags = set(query.get("tags", []))
        backend = query.get("backend", [None])[0]
        found = [
            job.as_json()
            for job in reversed(self.jobs.values())
            if tags <= set(job.tags) and backend in (None, job.backend)
        ]
        limit = int(query.get("limit", ["20"])[0])
        return 200, {"jobs": found[:limit], "count": len(found)}

    def _job(self, request: Any, query: Any, job_id: str) -> tuple[int, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            return 404, {"errors": [{"code": "1291", "message": "Job not found."}]}
        return 200, job.as_json()

    def _results(self, request: Any, query: Any, job_id: str) -> tuple[int, Any]:
        return 200, self.jobs[job_id].results

    def _metrics(self, request: Any, query: Any, job_id: str) -> tuple[int, Any]:
        return 200, {
            "timestamps": {
                "created": "2026-11-21T10:00:00.000Z",
                "running": "2026-11-21T10:00:30.000Z",
                "finished": "2026-11-21T10:00:33.000Z",
            },
            "usage": {"quantum_seconds": 2, "seconds": 2},
        }

    def _cancel(self, request: Any, query: Any, job_id: str) -> tuple[int, Any]:
        job = self.jobs[job_id]
        if job.status in ("Completed", "Failed", "Cancelled"):
            return 409, {"errors": [{"code": "1902", "message": "Job is in a final state."}]}
        job.status = "Cancelled"
        return 204, ""


@pytest.fixture
def ibm() -> Iterator[FakeIBMCloud]:
    fake = FakeIBMCloud()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        pattern = re.compile(r"https://.*")
        for method in ("GET", "POST", "PUT", "DELETE"):
            mock.add_callback(method, pattern, callback=fake.handle)
        yield fake
    assert fake.unhandled == [], "the adapter made calls the fake does not know"


def adapter(token: str = API_KEY) -> IBMQuantum:
    return IBMQuantum(Settings.from_env({"QCOS_IBM_TOKEN": token, "QCOS_IBM_INSTANCE": CRN}))


def brisbane() -> Target:
    return supplier("ibm_quantum").target(BACKEND)


def submit(ibm_adapter: IBMQuantum, qasm: str, *, shots: int = 500, job_id: str = "") -> str:
    request = SubmitRequest(
        client_token=job_id or f"job-{uuid.uuid4().hex[:12]}",
        target=brisbane(),
        parsed=parsed(qasm),
        shots=shots,
    )
    return ibm_adapter.submit(request)


def test_submit_posts_one_sampler_job_tagged_with_the_job_id_with_the_shots(
    ibm: FakeIBMCloud,
) -> None:
    # given
    ibm_adapter = adapter()

    # when
    task_id = submit(ibm_adapter, BELL, shots=777, job_id="job-7f3a")

    # then
    assert list(ibm.jobs) == [task_id]
    (body,) = ibm.posted
    assert body["program_id"] == "sampler"
    assert body["backend"] == BACKEND
    assert body["tags"] == ["job-7f3a"]
    ((circuit, _values, shots),) = body["params"]["pubs"]
    assert shots == 777
    assert {inst.operation.name for inst in circuit.data} <= ISA_OPERATIONS
    assert circuit.num_qubits == 127


def test_a_redelivered_submit_finds_the_job_instead_of_posting_it_again(
    ibm: FakeIBMCloud,
) -> None:
    # given
    first = submit(adapter(), BELL, job_id="job-redelivered")

    # when
    second = submit(adapter(), BELL, job_id="job-redelivered")

    # then
    assert second == first
    assert ibm.count("POST", f"{API}/jobs") == 1


def test_poll_follows_the_job_from_queued_through_running_to_completed(
    ibm: FakeIBMCloud,
) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL, shots=300)
    seen = []

    # when
    for status in ("Queued", "Running"):
        ibm.jobs[task_id].status = status
        seen.append(ibm_adapter.poll(brisbane(), task_id))
    ibm.finish(task_id)
    seen.append(ibm_adapter.poll(brisbane(), task_id))

    # then
    assert [(s.state, s.raw_status) for s in seen] == [
        (SupplierState.QUEUED, "QUEUED"),
        (SupplierState.RUNNING, "RUNNING"),
        (SupplierState.COMPLETED, "DONE"),
    ]
    assert seen[0].counts is None and seen[1].counts is None
    done = seen[2]
    assert done.counts is not None and sum(done.counts.values()) == 300
    assert set(done.counts) <= {"00", "11"}
    assert done.queue_time_ms == 30_000.0
    assert done.execution_time_ms == 2_000.0


def test_completed_counts_are_keyed_as_qiskit_keys_them_registers_last_first(
    ibm: FakeIBMCloud,
) -> None:
    # given
    from qiskit_aer import AerSimulator

    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, TWO_REGISTERS, shots=200)
    ibm.finish(task_id)
    expected = AerSimulator().run(parsed(TWO_REGISTERS).circuit, shots=200).result().get_counts()

    # when
    state = ibm_adapter.poll(brisbane(), task_id)

    # then
    assert state.counts == expected == {"10 1": 200}


def test_a_circuit_without_measurements_is_submitted_measuring_every_qubit(
    ibm: FakeIBMCloud,
) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, NO_MEASUREMENT, shots=100)
    ibm.finish(task_id)

    # when
    state = ibm_adapter.poll(brisbane(), task_id)

    # then
    assert state.counts == {"101": 100}


def test_cancel_asks_ibm_to_cancel_and_the_job_then_polls_cancelled(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL)

    # when
    ibm_adapter.cancel(brisbane(), task_id)

    # then
    assert ibm.count("POST", f"{API}/jobs/{task_id}/cancel") == 1
    state = ibm_adapter.poll(brisbane(), task_id)
    assert (state.state, state.raw_status) == (SupplierState.CANCELLED, "CANCELLED")


def test_cancelling_a_job_that_already_finished_is_not_an_error(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL)
    ibm.finish(task_id)

    # when
    ibm_adapter.cancel(brisbane(), task_id)

    # then
    assert ibm.count("POST", f"{API}/jobs/{task_id}/cancel") == 1
    assert ibm_adapter.poll(brisbane(), task_id).state is SupplierState.COMPLETED


def test_a_rate_limited_status_call_is_transient(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL)
    ibm.fail("GET", re.escape(f"{API}/jobs/{task_id}"), 429)

    # when
    with pytest.raises(SupplierUnavailable) as raised:
        ibm_adapter.poll(brisbane(), task_id)

    # then
    assert (
        raised.value.detail == f"IBM Quantum could not read job {task_id} (HTTP 429): injected 429"
    )
    assert ibm_adapter.poll(brisbane(), task_id).state is SupplierState.QUEUED


def test_a_503_that_outlasts_the_sdks_retries_is_transient(
    ibm: FakeIBMCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the SDK retries a 5xx five times with backoff; the backoff is not what is tested
    from urllib3.util.retry import Retry

    monkeypatch.setattr(Retry, "get_backoff_time", lambda self: 0.0)
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL)
    ibm.fail("GET", re.escape(f"{API}/jobs/{task_id}"), 503, times=10)

    # when
    with pytest.raises(SupplierUnavailable) as raised:
        ibm_adapter.poll(brisbane(), task_id)

    # then
    assert ibm.count("GET", f"{API}/jobs/{task_id}") == 6  # the call and its five retries
    assert f"IBM Quantum could not read job {task_id} (HTTP 503)" in raised.value.detail


def test_a_failed_job_polls_failed_with_a_readable_reason(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL)
    job = ibm.jobs[task_id]
    job.status, job.reason_code = "Failed", 1517
    job.reason = "Error in transpilation process. The circuit is not ISA."
    job.results = (
        "Traceback (most recent call last):\n"
        '  File "/runtime/sampler.py", line 41, in run\n'
        "    validate(circuit)\n"
        "qiskit.transpiler.exceptions.TranspilerError: 'The circuit is not ISA.'\n"
    )

    # when
    state = ibm_adapter.poll(brisbane(), task_id)

    # then
    assert (state.state, state.raw_status) == (SupplierState.FAILED, "ERROR")
    assert state.reason is not None
    assert "Error code 1517" in state.reason and "The circuit is not ISA" in state.reason
    assert "Traceback" not in state.reason and "\n" not in state.reason


def test_a_failed_job_whose_reason_is_only_a_traceback_keeps_its_last_line(
    ibm: FakeIBMCloud,
) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL)
    job = ibm.jobs[task_id]
    job.status = "Failed"
    job.results = (
        "Traceback (most recent call last):\n"
        '  File "/runtime/sampler.py", line 12, in run\n'
        "    raise QiskitError('Shots exceed the limit')\n"
        "qiskit.exceptions.QiskitError: 'Shots exceed the limit'\n"
    )

    # when
    state = ibm_adapter.poll(brisbane(), task_id)

    # then
    assert state.state is SupplierState.FAILED
    assert state.reason is not None and state.reason.endswith(
        "qiskit.exceptions.QiskitError: 'Shots exceed the limit'"
    )
    assert "File " not in state.reason


def test_an_unauthorised_api_call_is_rejected_without_the_key(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()
    task_id = submit(ibm_adapter, BELL)
    ibm.fail("GET", re.escape(f"{API}/jobs/{task_id}"), 401)

    # when
    with pytest.raises(SupplierRejected) as raised:
        ibm_adapter.poll(brisbane(), task_id)

    # then
    assert "refused the credentials (HTTP 401)" in raised.value.detail
    assert API_KEY not in raised.value.detail


def test_an_api_key_iam_does_not_know_is_rejected_and_check_credentials_says_why(
    ibm: FakeIBMCloud,
) -> None:
    # given
    ibm_adapter = adapter(token="ibm-api-key-nobody-issued")

    # when
    reason = ibm_adapter.check_credentials()
    with pytest.raises(SupplierRejected) as raised:
        submit(ibm_adapter, BELL)

    # then
    assert reason is not None and "Provided API key could not be found" in reason
    assert "ibm-api-key-nobody-issued" not in reason
    assert "refused" not in reason  # IAM's 400 is not a 401/403 from IBM Quantum
    assert "Provided API key could not be found" in raised.value.detail
    assert ibm.posted == []


def test_check_credentials_is_none_when_ibm_accepts_them(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()

    # when
    reason = ibm_adapter.check_credentials()

    # then
    assert reason is None
    assert ibm.count("GET", f"{API}/instances/usage") == 1


def test_one_service_serves_every_call_of_an_adapter(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()

    # when
    task_id = submit(ibm_adapter, BELL)
    ibm_adapter.poll(brisbane(), task_id)
    ibm_adapter.cancel(brisbane(), task_id)
    submit(ibm_adapter, BELL)

    # then: the instance lookup runs when the service is built, and only then
    assert ibm.count("POST", SEARCH_URL) == 1


def test_threads_that_call_a_new_adapter_at_once_share_one_service(ibm: FakeIBMCloud) -> None:
    # given
    ibm_adapter = adapter()
    start = threading.Barrier(4)

    def check() -> str | None:
        start.wait()
        return ibm_adapter.check_credentials()

    # when
    with ThreadPoolExecutor(max_workers=4) as pool:
        reasons = list(pool.map(lambda _: check(), range(4)))

    # then
    assert reasons == [None] * 4
    assert ibm.count("POST", SEARCH_URL) == 1
    assert ibm.count("GET", f"{API}/instances/usage") == 4
