"""Telemetry: log fields that say which request, job and key a line is about, and the spans and
metrics that go to Application Insights.

Log fields. `bound(request_id=..., job_id=..., key_id=...)` sets fields for the code it wraps
(a context variable, so threads and tasks started with a copy of the context keep them);
`bind` adds one inside it. Every log record made meanwhile, by any logger, carries them as
attributes (`record.request_id`, ...): the OpenTelemetry log handler exports them as custom
dimensions, and a local formatter can print them. `key_id` is a key's public id, never the key.
(The fields are set by a log record factory, so a log call must not pass these names in
`extra=`: logging refuses to overwrite an attribute.)

Spans. `request(...)`, `job_run(...)` and `supplier_call(...)` each wrap one unit of work in a
span and yield a `Span` to add attributes to; nested ones are children. Job runs are counted
(`qcos.job.runs`, by kind, supplier and outcome) and supplier calls timed
(`qcos.supplier.call.duration`).

Library loggers. Third-party libraries log a lot below WARNING in the normal course of a request:
qiskit's pass manager a line per transpiler pass at INFO (dozens per circuit), stevedore a line per
plugin at DEBUG. Whoever sets the root logger to INFO or DEBUG (the Functions worker does, funchost
does) would get those instead of ours. So importing this module, which `function_app` does through
the blueprints before any function runs (in Azure as under funchost), holds the `LIBRARY_LOGGERS`
at `QCOS_LIBRARY_LOG_LEVEL` (WARNING unless set): `quiet_libraries()`.

Configuration. The first span of a process decides, from `Settings.telemetry`: with an
Application Insights connection string, the Azure Monitor distro is configured once (traces,
metrics and the `shared` loggers' records go there; of its instrumentations only the Azure SDK
one is kept); without one, nothing is imported or configured and every span is a no-op.
OpenTelemetry is imported only on the configured path, so a cold start without telemetry never
pays for it. `use(...)` brings other providers instead (an embedding that configures
OpenTelemetry itself, or a test).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

FIELDS = ("request_id", "job_id", "key_id")
TRACER_NAME = "qcos"
# The distro instruments these when installed; none of them is how this app serves or calls
# (Django is installed only as another package's unused dependency), and the HTTP clients'
# spans would repeat the Azure SDK's (storage, Azure Quantum) and our supplier calls' spans.
_DISABLED_INSTRUMENTATIONS = (
    "django",
    "fastapi",
    "flask",
    "httpx",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)
# Only the app's own records are exported: the host collects the rest, and the Azure SDK logs
# every storage request at INFO.
_EXPORTED_LOGGER = "shared"

Attribute = str | bool | int | float

# -- library loggers ------------------------------------------------------------------------------

# Loggers (with their children) of libraries that log below WARNING on the request path, or may:
# the simulator stack and its plugin loader, the cloud SDKs' HTTP stacks, the Azure SDK's
# request/response lines (one per storage call), the Azure Monitor exporter's transmissions.
LIBRARY_LOGGERS = (
    "qiskit",
    "qiskit_aer",
    "qiskit_ibm_runtime",
    "stevedore",
    "numexpr",
    "matplotlib",
    "PIL",
    "spnego",
    "braket",
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "msal",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
    "azure.monitor.opentelemetry.exporter",
)


def quiet_libraries(level: int | None = None) -> None:
    """Hold `LIBRARY_LOGGERS` at `level` (None: the `QCOS_LIBRARY_LOG_LEVEL` setting, WARNING
    unless set; a value that names no level is logged and WARNING used). Their records below
    it are dropped before any handler sees them, whatever the root logger's level."""
    if level is None:
        from shared.config import SettingsError, library_log_level

        try:
            level = library_log_level()
        except SettingsError as exc:
            logger.error("%s; libraries log at WARNING", exc)
            level = logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)


quiet_libraries()

# -- log fields -----------------------------------------------------------------------------------

_fields: ContextVar[Mapping[str, str] | None] = ContextVar("qcos_log_fields", default=None)
_factory_lock = threading.Lock()
_factory_installed = False


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Log records made inside carry `fields` (and the enclosing ones); None values are left
    out. The fields are restored on exit, whatever `bind` added meanwhile."""
    _install_record_factory()
    current = _fields.get() or {}
    token = _fields.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


def bind(**fields: str | None) -> None:
    """Add `fields` to the innermost `bound` until it ends. Raises `RuntimeError` outside one
    (the fields would outlive the work they describe)."""
    current = _fields.get()
    if current is None:
        raise RuntimeError("telemetry.bind() outside telemetry.bound()")
    _fields.set({**current, **{k: v for k, v in fields.items() if v is not None}})


def _install_record_factory() -> None:
    """Once per process: every new log record gets the bound fields as attributes."""
    global _factory_installed
    if _factory_installed:
        return
    with _factory_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            fields = _fields.get()
            if fields:
                record.__dict__.update(fields)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


# -- spans ----------------------------------------------------------------------------------------


class Span:
    """One span of ours. Without telemetry configured it records nothing."""

    __slots__ = ("_span", "attributes")

    def __init__(self, span: Any = None) -> None:
        self._span = span
        self.attributes: dict[str, Attribute] = {}

    def set(self, name: str, value: Attribute | None) -> None:
        """Set attribute `name` (None: leave it unset)."""
        if self._span is None or value is None:
            return
        self.attributes[name] = value
        self._span.set_attribute(name, value)

    def error(self, description: str) -> None:
        """Mark the span failed; `description` is a short reason (never a message that could
        carry a secret)."""
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._span.set_status(Status(StatusCode.ERROR, description))

    def respond(self, status_code: int) -> None:
        """Record a request's HTTP status; a 5xx fails the span (a 4xx is the caller's)."""
        self.set("http.response.status_code", status_code)
        if status_code >= 500:
            self.error(f"HTTP {status_code}")


_NO_SPAN = Span()


class _Instruments:
    # A plain class: a dataclass costs about a millisecond of every cold start.
    __slots__ = ("tracer", "job_runs", "supplier_calls")

    def __init__(self, tracer: Any, job_runs: Any = None, supplier_calls: Any = None) -> None:
        self.tracer = tracer
        self.job_runs = job_runs  # a Counter, when there are metrics
        self.supplier_calls = supplier_calls  # a Histogram (seconds)


_UNDECIDED: Any = object()
_state: _Instruments | None = _UNDECIDED
_state_lock = threading.Lock()


def use(tracer_provider: Any, meter_provider: Any = None) -> None:
    """Send spans to `tracer_provider` (and metrics to `meter_provider`) from now on, instead
    of deciding from settings."""
    global _state
    with _state_lock:
        _state = _instruments(tracer_provider, meter_provider)


def reset() -> None:
    """Forget the process's decision: the next span decides again from settings."""
    global _state
    with _state_lock:
        _state = _UNDECIDED


def enabled() -> bool:
    """True when spans are recorded (deciding now, from settings, if not decided yet)."""
    return _instruments_now() is not None


def _instruments_now() -> _Instruments | None:
    global _state
    state = _state
    if state is _UNDECIDED:
        with _state_lock:
            if _state is _UNDECIDED:
                _state = _configure()
            state = _state
    return None if state is _UNDECIDED else state


def _configure() -> Any:
    """Configure the Azure Monitor distro when a connection string is set; None otherwise, or
    when it cannot be configured (logged: the app runs on without telemetry). Settings that
    cannot be read leave it undecided (the request that needs them fails on its own)."""
    from shared.config import get_settings

    try:
        settings = get_settings().telemetry
    except Exception:
        return _UNDECIDED
    if not settings.configured:
        return None
    try:
        from opentelemetry import metrics, trace

        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(
                connection_string=settings.connection_string,
                logger_name=_EXPORTED_LOGGER,
                # Every trace. The default (at most 5 traces a second, adapting) drops the
                # traces that come right after configuration: an instance's first requests.
                sampling_ratio=1.0,
                instrumentation_options={
                    name: {"enabled": False} for name in _DISABLED_INSTRUMENTATIONS
                },
            )
            logger.info("telemetry: sending traces, metrics and logs to Application Insights")
        else:  # the Functions worker (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY) did it
            logger.info("telemetry: OpenTelemetry was configured already; using it")
        return _instruments(trace.get_tracer_provider(), metrics.get_meter_provider())
    except Exception as exc:  # telemetry must never take the app down
        logger.error("telemetry: not configured (%s); nothing is sent", type(exc).__name__)
        return None


def _instruments(tracer_provider: Any, meter_provider: Any) -> _Instruments:
    tracer = tracer_provider.get_tracer(TRACER_NAME)
    if meter_provider is None:
        return _Instruments(tracer)
    meter = meter_provider.get_meter(TRACER_NAME)
    return _Instruments(
        tracer,
        job_runs=meter.create_counter(
            "qcos.job.runs", unit="{run}", description="Deliveries of job messages handled"
        ),
        supplier_calls=meter.create_histogram(
            "qcos.supplier.call.duration", unit="s", description="Calls to a supplier"
        ),
    )


@contextmanager
def _span(
    instruments: _Instruments, name: str, kind: str, attributes: Mapping[str, Attribute | None]
) -> Iterator[Span]:
    """A current span; an exception leaving it fails it with the exception's type only (its
    message may hold what a log must not)."""
    from opentelemetry.trace import SpanKind

    with instruments.tracer.start_as_current_span(
        name,
        kind=SpanKind[kind],
        record_exception=False,
        set_status_on_exception=False,
    ) as otel_span:
        span = Span(otel_span)
        for key, value in attributes.items():
            span.set(key, value)
        try:
            yield span
        except BaseException as exc:
            span.set("error.type", type(exc).__name__)
            span.error(type(exc).__name__)
            raise


@contextmanager
def request(method: str, route: str, url: str, request_id: str) -> Iterator[Span]:
    """The span of one HTTP request, named `<method> <route>` (the route's template)."""
    instruments = _instruments_now()
    if instruments is None:
        yield _NO_SPAN
        return
    parts = urlsplit(url)
    attributes: dict[str, Attribute | None] = {
        "http.request.method": method,
        "http.route": route,
        "url.scheme": parts.scheme or None,
        "server.address": parts.hostname,
        "server.port": parts.port,
        "url.path": parts.path,
        "request_id": request_id,
    }
    with _span(instruments, f"{method} {route}", "SERVER", attributes) as span:
        yield span


@contextmanager
def job_run(
    job_id: str,
    operation: str,
    *,
    message_id: str | None = None,
    delivery: int | None = None,
) -> Iterator[Span]:
    """The span of one run of job `job_id` (`operation`: "run", "poll", "run-sync"), with
    `job_id` bound for its logs. Set `job.kind`, `job.supplier`, `job.backend` and
    `job.outcome` on it as they become known; the run is counted by them."""
    with bound(job_id=job_id):
        instruments = _instruments_now()
        if instruments is None:
            yield _NO_SPAN
            return
        attributes: dict[str, Attribute | None] = {
            "job_id": job_id,
            "job.operation": operation,
            "messaging.message.id": message_id,
            "job.delivery": delivery,
        }
        span = _NO_SPAN
        try:
            with _span(instruments, f"job {operation}", "CONSUMER", attributes) as span:
                yield span
        finally:
            if instruments.job_runs is not None:
                instruments.job_runs.add(1, _dimensions(span, "job.kind", "job.supplier"))


@contextmanager
def supplier_call(
    supplier: str, operation: str, *, backend: str | None = None, mode: str | None = None
) -> Iterator[Span]:
    """The span of one call to a supplier (`operation`: "submit", "poll", "cancel", "emulate",
    "check_credentials"); a cloud call is a dependency, an emulation in-process work."""
    instruments = _instruments_now()
    if instruments is None:
        yield _NO_SPAN
        return
    attributes: dict[str, Attribute | None] = {
        "supplier": supplier,
        "supplier.operation": operation,
        "supplier.backend": backend,
        "supplier.mode": mode,
    }
    kind = "INTERNAL" if mode == "emulated" else "CLIENT"
    started = time.perf_counter()
    span = _NO_SPAN
    try:
        with _span(instruments, f"{supplier} {operation}", kind, attributes) as span:
            yield span
    finally:
        if instruments.supplier_calls is not None:
            instruments.supplier_calls.record(
                time.perf_counter() - started,
                _dimensions(span, "supplier", "supplier.operation", "supplier.backend"),
            )


def _dimensions(span: Span, *names: str) -> dict[str, Attribute]:
    """A metric's dimensions: `names` as the span has them, and how it ended."""
    found = {name: span.attributes[name] for name in names if name in span.attributes}
    outcome = span.attributes.get("job.outcome") or span.attributes.get("error.type") or "ok"
    return {**found, "outcome": outcome}
