"""Telemetry: the log fields of a request and a job, the spans of requests, job runs and supplier
calls (through an in-memory OpenTelemetry SDK), and what a process with and without an
Application Insights connection string imports and sends (in a fresh interpreter each)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import azure.functions.queue as fq
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from funchost.cli import _Formatter
from funchost.testing import Azurite
from shared import telemetry
from shared.accounts import keys
from shared.api import jobs, worker
from shared.circuits import ParsedCircuit
from shared.config import Settings
from shared.jobs.messages import Delivery, JobMessage
from shared.jobs.schemas import SupplierExecuteRequest
from shared.services import Services
from shared.suppliers.base import EmulatedRun, SubmitRequest, SupplierState, Target, TaskState
from tests.circuits import BELL

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Exported:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (found,) = self.named(name)
        return found

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
            for point in m.data.data_points
        ]


@pytest.fixture
def exported() -> Iterator[Exported]:
    """The app's spans and metrics, kept in memory (an SDK of our own instead of Azure's)."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.use(tracer_provider, meter_provider)
    yield Exported(spans, reader)
    telemetry.reset()
    tracer_provider.shutdown()
    meter_provider.shutdown()


@dataclass
class FakeBraket:
    """Braket as the adapters promise it: a task per client token, answered by a script."""

    supplier_id: str = "braket"
    states: list[TaskState] = field(default_factory=list)
    tasks: dict[str, str] = field(default_factory=dict)

    def configured(self) -> bool:
        return True

    def check_credentials(self) -> str | None:
        return None

    def submit(self, request: SubmitRequest) -> str:
        return self.tasks.setdefault(request.client_token, f"arn:task/{uuid.uuid4().hex[:8]}")

    def poll(self, target: Target, task_id: str) -> TaskState:
        return self.states.pop(0)

    def cancel(self, target: Target, task_id: str) -> None:
        return None

    def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
        return EmulatedRun({"00": shots // 2, "11": shots - shots // 2}, 1.0, "fake sv1")


def braket_services(adapter: FakeBraket) -> Services:
    return Services.build(Settings.from_env(os.environ), adapters={"braket": adapter})


def submit_to_braket(svc: Services, api_key: str) -> str:
    who = svc.accounts.authenticate(api_key)
    fields: dict[str, Any] = {"qasm": BELL, "device": "sv1", "shots": 100}
    req = SupplierExecuteRequest(**fields)
    return svc.jobs.submit_to_supplier(who, "braket", req).job_id


def deliver(svc: Services, user_id: str, job_id: str, poll: int | None = None) -> None:
    body = JobMessage(user_id, job_id, poll=poll).encode()
    svc.jobs.run(body, Delivery(message_id=f"m-{uuid.uuid4().hex[:6]}", dequeue_count=1))


def queue_message(user_id: str, job_id: str) -> fq.QueueMessage:
    """The queue trigger's message for the job, as the host hands it to the worker function."""
    body = JobMessage(user_id, job_id).encode().encode()
    return fq.QueueMessage(id=uuid.uuid4().hex, body=body, dequeue_count=1)


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


# -- log fields -------------------------------------------------------------------------------


def test_log_fields_are_bound_for_the_code_they_wrap_and_restored_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a logger
    log = logging.getLogger("shared.test_telemetry")
    caplog.set_level(logging.INFO)
    # when lines are logged inside nested bound fields, with a field bound part-way, and after
    with telemetry.bound(request_id="r-1"):
        log.info("outer")
        with telemetry.bound(job_id="j-1"):
            telemetry.bind(key_id="k-1")
            log.info("inner")
        log.info("outer again")
    log.info("outside")
    # then each line carries exactly the fields bound where it was made
    seen = {
        r.getMessage(): {f: getattr(r, f, None) for f in telemetry.FIELDS} for r in caplog.records
    }
    assert seen["outer"] == {"request_id": "r-1", "job_id": None, "key_id": None}
    assert seen["inner"] == {"request_id": "r-1", "job_id": "j-1", "key_id": "k-1"}
    assert seen["outer again"] == seen["outer"]
    assert seen["outside"] == {"request_id": None, "job_id": None, "key_id": None}


def test_bind_outside_bound_fields_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    # when a field is bound with no bound fields around it
    caplog.set_level(logging.INFO)
    with pytest.raises(RuntimeError):
        telemetry.bind(key_id="k-1")
    # then it is refused, and later lines do not carry it
    logging.getLogger("shared.test_telemetry").info("later")
    assert not hasattr(caplog.records[-1], "key_id")


def test_a_requests_logs_carry_its_request_id_and_key_id_and_never_the_key(
    make_user: Callable[..., Any], http: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # given a user's key
    user = make_user()
    key_id = keys.public_id(user.api_key)
    assert key_id is not None
    caplog.set_level(logging.DEBUG)
    # when they submit a job, and the worker runs it
    accepted = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        body={"qasm": BELL},
        headers={**user.headers, "X-Request-ID": "req-telemetry-0001"},
    )
    job_id = accepted.body["job_id"]
    during_request = list(caplog.records)
    caplog.clear()
    worker.run_job(queue_message(user.user_id, job_id))
    during_run = list(caplog.records)
    # then the request's lines carry its request id and the key's public id
    assert accepted.status == 202
    recorded = [r for r in during_request if "recorded" in r.getMessage()]
    assert recorded and all(
        (r.request_id, r.key_id) == ("req-telemetry-0001", key_id)  # type: ignore[attr-defined]
        for r in recorded
    )
    # and every line of the run carries the job id
    assert during_run and all(getattr(r, "job_id", None) == job_id for r in during_run)
    # and no line, message or attribute, holds the key or its secret part
    secret = user.api_key.rsplit("_", 1)[1]
    for record in during_request + during_run:
        text = record.getMessage() + repr(vars(record))
        assert user.api_key not in text and secret not in text


def test_a_job_run_in_the_requests_logs_carry_the_request_and_job_ids(
    make_user: Callable[..., Any], http: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # given a user, and the libraries' loggers let through (held at WARNING otherwise, they are
    # what logs in the pool thread: the Azure SDK's storage calls, the transpiler's passes)
    user = make_user()
    caplog.set_level(logging.DEBUG)
    for name in telemetry.LIBRARY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    # when they run a circuit in the request (the simulator runs in a pool thread)
    answer = http(
        jobs.execute_sync, "POST", "/execute-sync", body={"qasm": BELL}, headers=user.headers
    )
    # then the lines logged in the pool thread name the request and the job
    in_pool = [r for r in caplog.records if (r.threadName or "").startswith("execute-sync")]
    assert in_pool
    for record in in_pool:
        assert getattr(record, "request_id", None) == answer.headers["X-Request-ID"]
        assert getattr(record, "job_id", None) == answer.body["job_id"]


def test_local_logs_show_the_fields_after_the_message(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given the stand-in host's log format on the app's loggers
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Formatter("[%(asctime)s] %(message)s"))
    app_logger = logging.getLogger("shared")
    app_logger.addHandler(handler)
    previous = app_logger.level
    app_logger.setLevel(logging.INFO)
    user = make_user()
    try:
        # when a user submits a job
        answer = http(
            jobs.execute, "POST", "/api/v1/execute", body={"qasm": BELL}, headers=user.headers
        )
    finally:
        app_logger.removeHandler(handler)
        app_logger.setLevel(previous)
    # then its log line names the request and the key's public id
    line = next(x for x in stream.getvalue().splitlines() if "recorded" in x)
    request_id = answer.headers["X-Request-ID"]
    assert f"request_id={request_id}" in line
    assert f"key_id={keys.public_id(user.api_key)}" in line
    assert user.api_key not in stream.getvalue()


# -- spans ----------------------------------------------------------------------------------------


def test_a_request_is_one_server_span_named_by_its_route_with_status_request_and_key_ids(
    exported: Exported, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a user
    user = make_user()
    # when they submit a job
    answer = http(
        jobs.execute, "POST", "/api/v1/execute", body={"qasm": BELL}, headers=user.headers
    )
    # then the request is one server span, named by its method and route
    span = exported.one("POST /api/v1/execute")
    assert span.kind is SpanKind.SERVER
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/api/v1/execute"
    assert attributes["url.path"] == "/api/v1/execute"
    assert attributes["http.response.status_code"] == answer.status == 202
    # and it names the request and the key by its public id, never the key
    assert attributes["request_id"] == answer.headers["X-Request-ID"]
    assert attributes["key_id"] == keys.public_id(user.api_key)
    assert user.api_key not in repr(attributes)
    assert span.status.status_code is not StatusCode.ERROR


def _status_with_unknown_key(http: Callable[..., Any]) -> Any:
    """GET /api/v1/status/abc with a well-formed key that no user has."""
    return http(
        jobs.job_status,
        "GET",
        "/api/v1/status/abc",
        headers={"X-API-Key": "qcos_0123456789abcdef_" + "x" * 43},
        route_params={"job_id": "abc"},
    )


def test_a_refused_request_is_a_span_without_a_key_and_not_an_error(
    exported: Exported, services_env: Services, http: Callable[..., Any]
) -> None:
    # when a request presents a key that does not exist
    answer = _status_with_unknown_key(http)
    # then its span says 401, names no key, and is not a failure of ours
    span = exported.one("GET /api/v1/status/{job_id}")
    assert answer.status == 401
    assert span.attributes and span.attributes["http.response.status_code"] == 401
    assert "key_id" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_a_request_that_fails_on_our_side_is_an_error_span(
    exported: Exported, unreachable_storage_env: None, http: Callable[..., Any]
) -> None:
    # given storage that does not answer
    # when a user's request needs it
    answer = _status_with_unknown_key(http)
    # then the span is a failure with the 503
    span = exported.one("GET /api/v1/status/{job_id}")
    assert answer.status == 503
    assert span.attributes and span.attributes["http.response.status_code"] == 503
    assert span.status.status_code is StatusCode.ERROR


def test_a_cloud_job_run_and_poll_are_spans_with_the_supplier_calls_inside(
    exported: Exported,
    services_env: Services,
    make_user: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given Braket configured (mode cloud), answering running, then completed
    for name, value in {
        "QCOS_BRAKET_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00",
        "QCOS_BRAKET_SECRET_ACCESS_KEY": "not-a-secret",
        "QCOS_BRAKET_S3_BUCKET": "results-bucket",
    }.items():
        monkeypatch.setenv(name, value)
    braket = FakeBraket(
        states=[TaskState(SupplierState.COMPLETED, "COMPLETED", counts={"00": 50, "11": 50})]
    )
    svc = braket_services(braket)
    user = make_user()
    job_id = submit_to_braket(svc, user.api_key)
    # when the worker runs the job, then polls it
    deliver(svc, user.user_id, job_id)
    deliver(svc, user.user_id, job_id, poll=1)
    # then the run is a consumer span for the job, which submitted it and left it processing
    run = exported.one("job run")
    assert run.kind is SpanKind.CONSUMER
    assert run.attributes is not None
    assert run.attributes["job_id"] == job_id
    assert run.attributes["job.kind"] == "circuit"
    assert (run.attributes["job.supplier"], run.attributes["job.backend"]) == ("braket", "sv1")
    assert run.attributes["job.outcome"] == "processing"
    # and the submission is a client span inside it, naming the supplier, backend and task
    submit = exported.one("braket submit")
    assert submit.kind is SpanKind.CLIENT and parent_of(submit) == run.context.span_id
    assert submit.attributes is not None
    assert submit.attributes["supplier.backend"] == "sv1"
    assert submit.attributes["supplier.mode"] == "cloud"
    assert submit.attributes["supplier.task_id"] == next(iter(braket.tasks.values()))
    # and the poll is a span that completed the job, with the supplier's poll inside it
    poll = exported.one("job poll")
    assert poll.attributes and poll.attributes["job.outcome"] == "completed"
    supplier_poll = exported.one("braket poll")
    assert parent_of(supplier_poll) == poll.context.span_id
    assert supplier_poll.attributes and supplier_poll.attributes["supplier.state"] == "completed"
    # and the runs are counted by outcome, the supplier calls timed
    runs = {p.attributes["outcome"]: p.value for p in exported.points("qcos.job.runs")}
    assert runs == {"processing": 1, "completed": 1}
    calls = {
        p.attributes["supplier.operation"]: p.count
        for p in exported.points("qcos.supplier.call.duration")
    }
    assert calls == {"submit": 1, "poll": 1}


def test_an_emulated_job_run_has_the_emulation_inside_it(
    exported: Exported, services_env: Services, make_user: Callable[..., Any]
) -> None:
    # given Braket not configured (emulated)
    svc = braket_services(FakeBraket())
    user = make_user()
    job_id = submit_to_braket(svc, user.api_key)
    # when the worker runs the job
    deliver(svc, user.user_id, job_id)
    # then the emulation is in-process work inside the run, which completed the job
    run = exported.one("job run")
    emulate = exported.one("braket emulate")
    assert emulate.kind is SpanKind.INTERNAL and parent_of(emulate) == run.context.span_id
    assert emulate.attributes and emulate.attributes["supplier.mode"] == "emulated"
    assert run.attributes and run.attributes["job.outcome"] == "completed"


def test_a_job_run_that_will_be_retried_is_an_error_span(
    exported: Exported, services_env: Services, make_user: Callable[..., Any]
) -> None:
    # given an emulation that breaks for a reason that may pass
    class Broken(FakeBraket):
        def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
            raise ConnectionError("simulator host went away")

    svc = braket_services(Broken())
    user = make_user()
    job_id = submit_to_braket(svc, user.api_key)
    # when the worker runs the job
    with pytest.raises(ConnectionError):
        deliver(svc, user.user_id, job_id)
    # then the run and the call failed, by the exception's type only, and the run is a retry
    run, emulate = exported.one("job run"), exported.one("braket emulate")
    for span in (run, emulate):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes and span.attributes["error.type"] == "ConnectionError"
        assert "went away" not in repr(span.attributes) + str(span.status.description)
    assert run.attributes and run.attributes["job.outcome"] == "retry"


def test_a_job_run_in_the_request_is_a_span_inside_the_request(
    exported: Exported, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # when a user runs a circuit in the request
    user = make_user()
    answer = http(
        jobs.execute_sync, "POST", "/execute-sync", body={"qasm": BELL}, headers=user.headers
    )
    # then the run is a span inside the request's span, for the job it answered
    assert answer.status == 200
    request = exported.one("POST /execute-sync")
    run = exported.one("job run-sync")
    assert parent_of(run) == request.context.span_id
    assert run.attributes and run.attributes["job_id"] == answer.body["job_id"]
    assert run.attributes["job.outcome"] == "completed"


# -- configured or not: a fresh process each ------------------------------------------------------

# Serves two requests and a job as the host would (the functions, called directly), then
# reports what it answered, what telemetry it set up and which modules it loaded.
PROBE = """
import json, logging, os, sys, uuid
import azure.functions as func
import azure.functions.queue as fq
import function_app  # noqa: F401 (the worker loads the app first)
from shared import telemetry
from shared.accounts.tiers import TierName
from shared.api import jobs, worker
from shared.jobs.messages import JobMessage
from shared.services import services

logging.basicConfig(level=logging.INFO)
email = f"t-{uuid.uuid4().hex[:8]}@example.com"
created = services().accounts.create_user(email, TierName("professional"))
body = json.dumps({"qasm": os.environ["PROBE_QASM"]}).encode()
url = "http://127.0.0.1:7071/api/v1/execute"
headers = {"X-API-Key": created.api_key}
answers = [
    jobs.execute(func.HttpRequest("POST", url, headers=headers, params={}, body=body))
    for _ in range(2)
]
job_id = json.loads(answers[-1].get_body())["job_id"]
message = JobMessage(created.user.user_id, job_id).encode().encode()
worker.run_job(fq.QueueMessage(id="m-1", body=message, dequeue_count=1))
report = {
    "key": created.api_key,
    "request_id": answers[-1].headers["X-Request-ID"],
    "job_id": job_id,
    "statuses": [a.status_code for a in answers],
    "enabled": telemetry.enabled(),
}
if telemetry.enabled():
    from opentelemetry import _logs, trace
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    report["django"] = DjangoInstrumentor().is_instrumented_by_opentelemetry
    report["requests"] = RequestsInstrumentor().is_instrumented_by_opentelemetry
    report["handlers"] = [type(h).__name__ for h in logging.getLogger("shared").handlers]
    trace.get_tracer_provider().force_flush()
    _logs.get_logger_provider().force_flush()
heavy = ("azure.monitor", "opentelemetry.sdk", "opentelemetry.instrumentation")
report["loaded"] = sorted(m for m in sys.modules if m.startswith(heavy))
print("REPORT " + json.dumps(report))
"""


def run_probe(azurite: Azurite, **env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    clean |= {"AzureWebJobsStorage": azurite.connection_string, "PROBE_QASM": BELL, **env}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("REPORT "))
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    report["stderr"] = out.stderr
    return report


def test_without_a_connection_string_nothing_is_configured_imported_or_sent(
    azurite: Azurite,
) -> None:
    # when a process without an Application Insights connection string serves requests and a job
    report = run_probe(azurite)
    # then they were served, and no exporter, SDK or instrumentation was ever imported
    assert report["statuses"] == [202, 202]
    assert report["enabled"] is False
    assert report["loaded"] == []


@dataclass
class Ingestion:
    """A stand-in for Application Insights' ingestion endpoint: it keeps what it is sent."""

    url: str
    envelopes: list[dict[str, Any]]


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            # Telemetry is a JSON array of envelopes; live metrics post elsewhere.
            items: list[dict[str, Any]] = json.loads(body) if self.path.endswith("/track") else []
            received.extend(items)
            answer = json.dumps(
                {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Ingestion(f"http://127.0.0.1:{server.server_address[1]}/", received)
    server.shutdown()


def test_with_a_connection_string_request_and_job_spans_and_logs_go_to_application_insights(
    azurite: Azurite, ingestion: Ingestion, tmp_path: Path
) -> None:
    # given a process whose Application Insights is a local stand-in
    connection = (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint={ingestion.url};LiveEndpoint={ingestion.url}"
    )
    # when it serves requests and runs a job
    report = run_probe(
        azurite,
        APPLICATIONINSIGHTS_CONNECTION_STRING=connection,
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",  # no calls to Microsoft's endpoint
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="azure_app_service",  # no VM metadata lookup
        TMPDIR=str(tmp_path),
    )
    # then the Azure Monitor distro was configured, once, without the instrumentations we drop
    assert report["statuses"] == [202, 202]
    assert report["enabled"] is True
    assert report["django"] is False and report["requests"] is False
    assert report["handlers"].count("LoggingHandler") == 1
    # and each request arrived as a request named by its route, with its ids
    requests = [e["data"]["baseData"] for e in ingestion.envelopes if e["name"].endswith("Request")]
    executes = [r for r in requests if r["name"] == "POST /api/v1/execute"]
    assert len(executes) == 2 and {r["responseCode"] for r in executes} == {"202"}
    key_id = keys.public_id(report["key"])
    assert {r["properties"]["key_id"] for r in executes} == {key_id}
    assert report["request_id"] in {r["properties"]["request_id"] for r in executes}
    # and the job's run arrived as a request of its own, completed
    (run,) = [r for r in requests if r["name"] == "job run"]
    assert run["properties"]["job_id"] == report["job_id"]
    assert run["properties"]["job.outcome"] == "completed"
    # and the app's log lines arrived with the request's ids
    messages = [e["data"]["baseData"] for e in ingestion.envelopes if e["name"].endswith("Message")]
    recorded = [m for m in messages if "recorded" in m["message"]]
    assert recorded and {m["properties"]["key_id"] for m in recorded} == {key_id}
    # and nothing sent holds the key
    assert report["key"] not in json.dumps(ingestion.envelopes)
