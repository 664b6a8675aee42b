"""What telemetry costs a request, measured side by side in one process (medians of ROUNDS).

Each round calls the real `GET /health` function (the whole `shared.http.handle` pipeline, no
storage) CALLS times in each of three ways, interleaved:
  (a) the handler's work alone: building its answer, without the pipeline (the floor);
  (b) the pipeline with telemetry off (no APPLICATIONINSIGHTS_CONNECTION_STRING: the default);
  (c) the pipeline with telemetry on: an OpenTelemetry SDK tracer and meter provider recording
      every span and metric (to memory, so no network time is counted; the Azure Monitor
      exporter batches in a background thread).
It prints microseconds per request and the ratios (b)/(a) and (c)/(b).
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/telemetry_overhead.py`.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import azure.functions as func

CALLS = 2000
ROUNDS = 7


def request() -> func.HttpRequest:
    return func.HttpRequest(method="GET", url="http://127.0.0.1:7071/health", headers={}, body=b"")


def per_call(fn: Callable[[], object]) -> float:
    """Microseconds per call of `fn` over CALLS calls."""
    start = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - start) / CALLS * 1e6


def main() -> None:
    os.environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from shared import telemetry
    from shared.api import health
    from shared.http import json_response

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    def floor() -> object:
        return json_response(health.Liveness(status="ok"), 200, "0" * 32)

    def off() -> object:
        return health.health(request())

    def on() -> object:
        answer = health.health(request())
        exporter.clear()
        return answer

    results: dict[str, list[float]] = {"floor": [], "off": [], "on": []}
    for _ in range(ROUNDS):
        results["floor"].append(per_call(floor))
        telemetry.reset()
        assert not telemetry.enabled()
        results["off"].append(per_call(off))
        telemetry.use(tracer_provider, meter_provider)
        results["on"].append(per_call(on))
        assert telemetry.enabled()
    telemetry.reset()

    a, b, c = (statistics.median(results[k]) for k in ("floor", "off", "on"))
    print(f"GET /health in process, {CALLS} calls x {ROUNDS} rounds (median of rounds, µs/request)")
    print(f"  (a) answer alone, no pipeline      {a:8.1f}")
    print(f"  (b) pipeline, telemetry off        {b:8.1f}   (b)/(a) = {b / a:.2f}")
    print(f"  (c) pipeline, telemetry on (SDK)   {c:8.1f}   (c)/(b) = {c / b:.2f}")
    print(f"  telemetry on adds {c - b:.1f} µs per request")


if __name__ == "__main__":
    main()
