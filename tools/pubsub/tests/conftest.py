"""Fixtures: one pubsubhost process and one recording event handler for the session.

- `upstream`: a small aiohttp app on its own thread that answers the CloudEvents calls
  and records them; a test sets `upstream.replies[event]` to change an answer (reset
  after every test).
- `wps`: pubsubhost with hub `qcos` (every event to `upstream`) and hub `bare` (no
  event handler).
- `service(hub)`: the real `WebPubSubServiceClient` from the connection string.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from pubsubhost.testing import PubSubHost, free_port


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class RecordingUpstream:
    """An event handler: OPTIONS answers the abuse-protection check, POSTs are recorded."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[dict[str, Any]] = []
        self.replies: dict[str, Reply] = {}
        self.allowed_origin = "*"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/events/{event}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if request.method == "OPTIONS":
            return web.Response(headers={"WebHook-Allowed-Origin": self.allowed_origin})
        event = request.headers.get("ce-eventName", "")
        reply = self.replies.get(event, Reply(status=204))
        headers = {"Content-Type": reply.content_type, **reply.headers}
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reply(
        self,
        event: str,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """How the handler answers `event` until the test ends."""
        self.replies[event] = Reply(status, body, content_type, dict(headers or {}))

    def events(self, connection_id: str | None = None, event: str | None = None) -> list[dict]:
        return [
            r
            for r in list(self.requests)
            if r["method"] == "POST"
            and (connection_id is None or r["headers"].get("ce-connectionId") == connection_id)
            and (event is None or r["headers"].get("ce-eventName") == event)
        ]

    def wait_for(self, connection_id: str, event: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(connection_id, event)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {event} event for {connection_id}: {self.requests}")


@pytest.fixture(scope="session")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_upstream(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "upstream" in request.fixturenames:
        server = request.getfixturevalue("upstream")
        server.replies.clear()
        server.allowed_origin = "*"


@pytest.fixture(scope="session")
def wps(upstream: RecordingUpstream) -> Iterator[PubSubHost]:
    config = {
        "qcos": {
            "eventHandlers": [
                {
                    "urlTemplate": upstream.url + "/events/{event}",
                    "userEventPattern": "*",
                    "systemEvents": ["connect", "connected", "disconnected"],
                }
            ]
        },
        "bare": {},
    }
    with PubSubHost(hub_config=config, extra_args=["--max-messages-per-second", "50"]) as host:
        yield host


@pytest.fixture
def service(wps: PubSubHost) -> Callable[[str], WebPubSubServiceClient]:
    def make(hub: str) -> WebPubSubServiceClient:
        return WebPubSubServiceClient.from_connection_string(wps.connection_string, hub=hub)

    return make
