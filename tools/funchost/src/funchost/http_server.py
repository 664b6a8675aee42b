"""The HTTP front: function routes, `/admin/host/status` and the durable webhooks."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func
from aiohttp import web

from .indexing import FunctionSpec
from .invoker import Invoker
from .routes import RouteTable

if TYPE_CHECKING:
    from .durable.webhooks import DurableWebhooks
    from .pubsub_proxy import PubSubProxy

log = logging.getLogger("funchost")

DURABLE_PREFIX = "/runtime/webhooks/durabletask/"


class HttpFront:
    """Dispatches each request to its function and returns its HttpResponse as is."""

    def __init__(
        self,
        routes: RouteTable[FunctionSpec],
        invoker: Invoker,
        inputs: Any,
        max_body_bytes: int = 100 * 1024 * 1024,
    ) -> None:
        self.routes = routes
        self.invoker = invoker
        self.inputs = inputs  # callable(spec, request_url) -> dict of input binding values
        self.durable: DurableWebhooks | None = None
        self.pubsub: PubSubProxy | None = None  # WebSocket paths served by Web PubSub
        self.state = "Running"
        self.max_body_bytes = max_body_bytes
        self._invoking: set[asyncio.Task[Any]] = set()

    def cancel_invocations(self) -> None:
        """Cut off the function invocations of requests still being handled (the host's
        grace period is over): their clients get the connection closed."""
        for task in self._invoking:
            task.cancel()

    def build(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.rstrip("/") == "/admin/host/status":
            return web.json_response(
                {
                    "state": self.state,
                    "processUptime": None,
                    "version": "funchost",
                    "id": "funchost",
                }
            )
        if path.startswith(DURABLE_PREFIX) and self.durable is not None:
            return await self.durable.handle(request, path[len(DURABLE_PREFIX) :])
        proxy = self.pubsub
        hub = proxy.hub_for(request) if proxy is not None else None
        if proxy is not None and hub is not None:
            if self.state != "Running":
                return web.Response(status=503, headers={"Retry-After": "5"})
            response: web.StreamResponse = await self._tracked(proxy.handle(request, hub))
            return response
        found = self.routes.find(request.method, path)
        if isinstance(found, int):
            return web.Response(status=found)
        if self.state != "Running":  # stopping: no new work
            return web.Response(
                status=503, text="Service Unavailable", headers={"Retry-After": "5"}
            )
        route, values = found
        spec = route.target
        body = await request.read()
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params={k: request.query.getone(k) for k in request.query.keys()},
            route_params=values,
            body=body,
        )
        task = asyncio.current_task()
        assert task is not None
        self._invoking.add(task)
        try:
            outcome = await self.invoker.invoke(
                spec,
                http_request,
                self.inputs(spec, str(request.url)),
                reason=f"HTTP {request.method} {path}",
            )
        finally:
            self._invoking.discard(task)
        if not outcome.ok:
            return web.Response(status=500, text="Internal Server Error")
        return _to_aiohttp(outcome.value)

    async def _tracked(self, work: Any) -> Any:
        """Runs `work` as an invocation the host cuts off when its grace period is over."""
        task = asyncio.current_task()
        assert task is not None
        self._invoking.add(task)
        try:
            return await work
        finally:
            self._invoking.discard(task)


def _to_aiohttp(value: Any) -> web.Response:
    if value is None:
        return web.Response(status=204)
    if isinstance(value, (str, bytes)):
        value = func.HttpResponse(value)
    if not isinstance(value, func.HttpResponse):
        log.error("HTTP function returned %s, not an HttpResponse", type(value).__name__)
        return web.Response(status=500, text="Internal Server Error")
    headers = dict(value.headers)
    if not any(k.lower() == "content-type" for k in headers):
        mimetype = value.mimetype or "text/plain"
        headers["Content-Type"] = f"{mimetype}; charset={value.charset or 'utf-8'}"
    return web.Response(status=value.status_code, body=value.get_body(), headers=headers)
