"""The host: loads the app, serves HTTP, polls queues, fires timers, runs orchestrations."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.functions import meta

from .http_server import HttpFront
from .indexing import FunctionSpec, import_app, index_app
from .invoker import Invoker, decode
from .queues import QueueListener, QueueSink, QueueWakeups
from .routes import RouteTable
from .settings import apply_local_settings, load_host_config, load_local_settings
from .timers import Schedule, TimerRunner

log = logging.getLogger("funchost")

DURABLE_TRIGGERS = ("orchestrationTrigger", "activityTrigger")


class Host:
    """One running app. `load()` indexes and validates; `serve()` runs until stopped."""

    def __init__(
        self, app_dir: Path, host: str = "127.0.0.1", port: int = 7071, grace_seconds: float = 10.0
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.bind_host = host
        self.port = port
        self.grace = grace_seconds
        self.stop_event = asyncio.Event()
        self.functions: list[FunctionSpec] = []
        self.base_url = f"http://{host}:{port}"
        self.durable_client_json = ""
        self.abandoned = 0

    def load(self) -> None:
        apply_local_settings(load_local_settings(self.app_dir))
        self.config = load_host_config(self.app_dir)
        os.chdir(self.app_dir)
        self.functions = index_app(import_app(self.app_dir))
        self.routes: RouteTable[FunctionSpec] = RouteTable(self.config.route_prefix)
        self.timer_specs: list[FunctionSpec] = []
        self.queue_specs: list[FunctionSpec] = []
        for spec in self.functions:
            kind = spec.trigger_type
            if kind == "httpTrigger":
                route = spec.trigger.get("route") or spec.name
                methods = spec.trigger.get("methods")
                self.routes.add(str(route), list(methods) if methods else None, spec)
            elif kind == "timerTrigger":
                Schedule(str(spec.trigger.get("schedule", "")))  # refuse a bad schedule at start
                self.timer_specs.append(spec)
            elif kind == "queueTrigger":
                self.queue_specs.append(spec)
        self.uses_durable = any(
            s.trigger_type in DURABLE_TRIGGERS or any(b.type == "durableClient" for b in s.inputs)
            for s in self.functions
        )

    def banner(self) -> str:
        lines = ["", "Functions:", ""]
        for spec in self.functions:
            if spec.trigger_type == "httpTrigger":
                route = next(r for r in self.routes.routes if r.target is spec)
                methods = ",".join(sorted(route.methods)) or "ALL"
                lines.append(f"\t{spec.name}: [{methods}] {self.base_url}/{route.template}")
            else:
                lines.append(f"\t{spec.name}: {spec.trigger_type}")
            lines.append("")
        return "\n".join(lines)

    def _inputs(self, spec: FunctionSpec, url: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for binding in spec.inputs:
            if binding.type == "durableClient":
                values[binding.name] = decode(
                    "durableClient", meta.Datum(self.durable_client_json, "string")
                )
        return values

    async def serve(self, started_at: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop_event.set)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        invoker = Invoker(str(self.app_dir))
        wakeups = QueueWakeups()
        sink = QueueSink(self.config.queues, wakeups)
        invoker.sinks["queue"] = sink
        front = HttpFront(self.routes, invoker, self._inputs)
        engine = None
        if self.uses_durable:
            from .durable.engine import DurableEngine
            from .durable.webhooks import DurableWebhooks

            engine = DurableEngine(self.config, self.functions, invoker, self.base_url)
            await engine.start()
            front.durable = DurableWebhooks(engine, self.base_url)
            self.durable_client_json = front.durable.client_binding_json()
        runner = web.AppRunner(front.build(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.bind_host, self.port, reuse_address=True)
        await site.start()
        lease = float(os.environ.get("FUNCHOST_QUEUE_LEASE_SECONDS", "30"))
        listeners = [
            QueueListener(s, self.config.queues, invoker, wakeups, lease) for s in self.queue_specs
        ]
        timers = [TimerRunner(s, invoker) for s in self.timer_specs]
        components: list[QueueListener | TimerRunner] = [*listeners, *timers]
        background = [asyncio.create_task(x.run()) for x in components]
        print(self.banner(), flush=True)
        elapsed = f" in {time.perf_counter() - started_at:.2f}s" if started_at else ""
        log.info("Host started%s; listening on %s", elapsed, self.base_url)
        stop = asyncio.create_task(self.stop_event.wait())
        done, _ = await asyncio.wait({stop, *background}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop and task.exception() is not None:
                log.error("host component failed: %r", task.exception())
        log.info("Stopping the host: no new work; in-flight invocations get %.0fs", self.grace)
        front.state = "Stopping"
        for component in components:
            component.stopping.set()
        if engine is not None:
            engine.stopping.set()
        finished = await invoker.wait_idle(self.grace)
        self.abandoned = 0 if finished else invoker.in_flight
        if not finished:
            log.warning(
                "grace period over with %d invocations running; their queue messages "
                "reappear after their lease",
                invoker.in_flight,
            )
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if engine is not None:
            await engine.close()
        await sink.close()
        await runner.cleanup()
        invoker.shutdown()
        log.info("Host stopped")
