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
from .pubsub_proxy import PubSubProxy
from .queues import QueueListener, QueueSink, QueueWakeups
from .routes import RouteTable
from .settings import apply_local_settings, load_host_config, load_local_settings
from .shutdown import Watchdog, start_resource_tracker
from .timers import Schedule, TimerRunner

log = logging.getLogger("funchost")

DURABLE_TRIGGERS = ("orchestrationTrigger", "activityTrigger")
# In-flight invocations get `grace` seconds once a stop is asked for; closing the listeners,
# the HTTP server and the storage clients then gets this long before the watchdog exits anyway.
TEARDOWN_SECONDS = 0.5
# What aiohttp waits, twice, for a response still being written when it closes.
HTTP_SHUTDOWN_SECONDS = 0.1


class Host:
    """One running app. `load()` indexes and validates; `serve()` runs until stopped.

    A stop (SIGINT or SIGTERM, `request_stop()`) takes no new work, gives in-flight
    invocations `grace_seconds`, then cancels them: their queue messages are not deleted and
    come back after their lease (a job cut off by a stop runs again on the next start). A
    second signal ends the grace period at once. The watchdog bounds the whole stop to the
    grace period plus TEARDOWN_SECONDS. `abandoned` counts the sync functions still running in
    threads once `serve()` returns: the process must then leave with `shutdown.exit_now`.
    """

    def __init__(
        self, app_dir: Path, host: str = "127.0.0.1", port: int = 7071, grace_seconds: float = 2.0
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.bind_host = host
        self.port = port
        self.grace = grace_seconds
        self.stop_event = asyncio.Event()
        self.hurry = asyncio.Event()  # a second signal: no more grace
        self.watchdog = Watchdog()
        self.functions: list[FunctionSpec] = []
        self.base_url = f"http://{host}:{port}"
        self.durable_client_json = ""
        self.abandoned = 0

    def request_stop(self) -> None:
        """Stop serving (from the event loop's thread); a second call ends the grace period."""
        if self.stop_event.is_set():
            if not self.hurry.is_set():
                log.info("Stopping now: in-flight invocations are cut off")
            self.hurry.set()
            self.watchdog.arm(TEARDOWN_SECONDS)
            return
        self.stop_event.set()
        self.watchdog.arm(self.grace + TEARDOWN_SECONDS)

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
        self.pubsub = PubSubProxy.from_settings()
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
        if self.pubsub is not None:
            for path, hub in self.pubsub.routes.items():
                ws_url = "ws" + self.base_url[4:]
                lines += [f"\t{ws_url}/{path}: WebSocket, Web PubSub hub {hub}", ""]
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
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        start_resource_tracker()
        invoker = Invoker(str(self.app_dir))
        wakeups = QueueWakeups()
        sink = QueueSink(self.config.queues, wakeups)
        invoker.sinks["queue"] = sink
        front = HttpFront(self.routes, invoker, self._inputs)
        front.pubsub = self.pubsub
        engine = None
        if self.uses_durable:
            from .durable.engine import DurableEngine
            from .durable.webhooks import DurableWebhooks

            engine = DurableEngine(self.config, self.functions, invoker, self.base_url)
            await engine.start()
            front.durable = DurableWebhooks(engine, self.base_url)
            self.durable_client_json = front.durable.client_binding_json()
        runner = web.AppRunner(
            front.build(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=HTTP_SHUTDOWN_SECONDS,
        )
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
        stop.cancel()
        if not self.stop_event.is_set():  # a component failed: stop as if asked to
            self.request_stop()
        if invoker.in_flight:
            log.info(
                "Stopping the host: no new work; %d in-flight invocation(s) get %gs "
                "(Ctrl-C again: stop now)",
                invoker.in_flight,
                self.grace,
            )
        else:
            log.info("Stopping the host")
        front.state = "Stopping"
        for component in components:
            component.stopping.set()
        if engine is not None:
            engine.stopping.set()
        finished = await invoker.wait_idle(self.grace, self.hurry)
        if not finished:
            log.warning(
                "%d invocation(s) still running are abandoned; their queue messages "
                "reappear after their lease",
                invoker.in_flight,
            )
        front.cancel_invocations()
        for task in background:  # a listener cancels its in-flight invocations
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if engine is not None:
            await engine.close()
        await sink.close()
        await runner.cleanup()
        invoker.shutdown()
        self.abandoned = invoker.threads_busy
        log.info("Host stopped")
