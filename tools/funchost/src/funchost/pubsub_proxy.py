"""WebSocket paths of the app served by a Web PubSub hub: a proxy.

Azure Functions cannot hold a WebSocket; an app that streams puts Azure Web PubSub in front
and handles its clients' frames as CloudEvents. Locally, to serve a WebSocket URL on the
app's own host and port, funchost connects each client that asks for an upgrade on a
configured path to the hub's client endpoint, with an access token it mints from the
connection string: no user, no roles, no groups, good for a minute (a token is checked at the
handshake only). The hub's event handler then sees a plain connection with no user, and
decides from the client's frames what it may receive.

Settings (environment, or `Values` of local.settings.json):

  FUNCHOST_WEBPUBSUB_ROUTES      PATH=HUB pairs, space-separated (`api/stream=chat`); HUB may
                                 be a `%Setting%`
  FUNCHOST_WEBPUBSUB_CONNECTION  the name of the setting with the service's connection string
                                 (default `WebPubSubConnectionString`, the extension's own)
  FUNCHOST_WEBPUBSUB_FIRST_FRAME_SECONDS
                                 how long a client may stay connected without sending a frame
                                 (default 30; 0: forever)

The proxy's connections are anonymous until the app hears from them: a client that sends no
frame within FUNCHOST_WEBPUBSUB_FIRST_FRAME_SECONDS is closed (1008, "no frame within N s"),
so idle sockets cannot hold the hub's connections.

A handshake the hub refuses is answered with the hub's status (401, 429, ...); a hub that does
not answer, with 502. Frames and closes (code and reason) pass through both ways.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web

from .settings import ConfigError, resolve_setting_refs

log = logging.getLogger("funchost")

ROUTES_SETTING = "FUNCHOST_WEBPUBSUB_ROUTES"
CONNECTION_SETTING = "FUNCHOST_WEBPUBSUB_CONNECTION"
DEFAULT_CONNECTION = "WebPubSubConnectionString"
FIRST_FRAME_SETTING = "FUNCHOST_WEBPUBSUB_FIRST_FRAME_SECONDS"
FIRST_FRAME_SECONDS = 30.0
TOKEN_SECONDS = 60
_NO_STATUS = (None, 1005, 1006)  # close codes a peer may not send


@dataclass(frozen=True)
class ServiceEndpoint:
    """A Web PubSub connection string's endpoint (http[s]://host[:port]) and access key."""

    endpoint: str
    access_key: str

    @classmethod
    def parse(cls, connection_string: str) -> ServiceEndpoint:
        parts: dict[str, str] = {}
        for part in connection_string.split(";"):
            name, sep, value = part.partition("=")
            if sep:
                parts[name.strip().lower()] = value.strip()
        endpoint, key = parts.get("endpoint", ""), parts.get("accesskey", "")
        split = urlsplit(endpoint)
        if split.scheme not in ("http", "https") or not split.hostname or not key:
            raise ConfigError(
                "a Web PubSub connection string needs Endpoint=http(s)://... and AccessKey"
            )
        if parts.get("port") and split.port is None:
            endpoint = f"{split.scheme}://{split.hostname}:{parts['port']}"
        return cls(endpoint.rstrip("/").lower(), key)

    def client_url(self, hub: str) -> str:
        return "ws" + self.endpoint[4:] + f"/client/hubs/{hub}"

    def token(self, hub: str, now: float | None = None) -> str:
        """An HS256 client access token with no user: `aud` the hub's client URL, `exp`."""
        issued = int(now if now is not None else time.time())
        claims = {"aud": f"{self.endpoint}/client/hubs/{hub}", "iat": issued}
        claims["exp"] = issued + TOKEN_SECONDS

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims, separators=(",", ":")).encode())
        signed = f"{header}.{payload}".encode("ascii")
        digest = hmac.new(self.access_key.encode(), signed, hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(digest)}"


class PubSubProxy:
    """Serves the configured paths' WebSocket upgrades through the hubs."""

    def __init__(
        self,
        routes: Mapping[str, str],
        service: ServiceEndpoint,
        first_frame_seconds: float = FIRST_FRAME_SECONDS,
    ) -> None:
        self.routes = {path.strip("/").lower(): hub for path, hub in routes.items()}
        self.service = service
        self.first_frame_seconds = first_frame_seconds

    @classmethod
    def from_settings(cls, environ: Mapping[str, str] | None = None) -> PubSubProxy | None:
        """The proxy the settings ask for; None when FUNCHOST_WEBPUBSUB_ROUTES is unset.
        Raises ConfigError for a malformed route or a missing connection string."""
        env = dict(os.environ if environ is None else environ)
        raw = env.get(ROUTES_SETTING, "").split()
        if not raw:
            return None
        routes = {}
        for item in raw:
            path, sep, hub = item.partition("=")
            hub = resolve_setting_refs(hub, env) if sep else ""
            if not path.strip("/") or not hub:
                raise ConfigError(f"{ROUTES_SETTING}: {item!r} is not PATH=HUB")
            routes[path] = hub
        name = env.get(CONNECTION_SETTING) or DEFAULT_CONNECTION
        connection_string = env.get(name, "")
        if not connection_string:
            raise ConfigError(
                f"{ROUTES_SETTING} is set but setting {name!r} (the Web PubSub "
                f"connection string, named by {CONNECTION_SETTING}) is not"
            )
        raw_wait = env.get(FIRST_FRAME_SETTING, "").strip()
        try:
            first_frame = float(raw_wait) if raw_wait else FIRST_FRAME_SECONDS
        except ValueError:
            first_frame = -1.0
        if not first_frame >= 0:
            raise ConfigError(f"{FIRST_FRAME_SETTING} must be a number of seconds, 0 or more")
        return cls(routes, ServiceEndpoint.parse(connection_string), first_frame)

    def hub_for(self, request: web.Request) -> str | None:
        """The hub serving `request`: a WebSocket upgrade on a configured path; else None."""
        if request.method != "GET" or "websocket" not in request.headers.get("Upgrade", "").lower():
            return None
        return self.routes.get(request.path.strip("/").lower())

    async def handle(self, request: web.Request, hub: str) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        offered = [p for p in offered if p]
        async with aiohttp.ClientSession() as session:
            try:
                upstream = await session.ws_connect(
                    self.service.client_url(hub),
                    params={"access_token": self.service.token(hub)},
                    protocols=offered,
                    autoping=True,
                    heartbeat=30.0,
                )
            except aiohttp.WSServerHandshakeError as error:
                log.info(
                    "WebSocket %s: the hub refused the connection (%s)", request.path, error.status
                )
                return web.Response(status=error.status if error.status >= 400 else 502)
            except (aiohttp.ClientError, OSError) as error:
                log.warning("WebSocket %s: the hub does not answer: %s", request.path, error)
                return web.Response(status=502, text="the Web PubSub hub does not answer")
            client = web.WebSocketResponse(
                protocols=(upstream.protocol,) if upstream.protocol else (), heartbeat=30.0
            )
            try:
                await client.prepare(request)
                await _relay(client, upstream, self.first_frame_seconds)
            finally:
                # The host stopping (cancelled) or either side gone: close both.
                if not upstream.closed:
                    await upstream.close(code=1001 if not client.closed else 1000)
                if not client.closed:
                    await client.close(code=1001, message=b"the host is stopping")
        return client


async def _relay(
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    first_frame_seconds: float,
) -> None:
    """Frames both ways until one side closes; then closes the other with its code and reason.
    A client silent for `first_frame_seconds` (when not 0) after connecting is closed."""
    to_hub = asyncio.ensure_future(_pump(client, upstream, first_frame_seconds or None))
    to_client = asyncio.ensure_future(_pump(upstream, client))
    try:
        done, _ = await asyncio.wait({to_hub, to_client}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        to_hub.cancel()
        to_client.cancel()
        raise
    finished = done.pop()
    other = to_client if finished is to_hub else to_hub
    other.cancel()
    await asyncio.gather(other, return_exceptions=True)
    code, reason = finished.result()
    peer = upstream if finished is to_hub else client
    if not peer.closed:
        await peer.close(code=code, message=reason.encode()[:120])


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    first_frame_seconds: float | None = None,
) -> tuple[int, str]:
    """Copies `source`'s frames to `sink`; returns the close code and reason to pass on.
    With `first_frame_seconds`, a source that sends nothing that long is closed (1008)."""
    wait = first_frame_seconds
    while True:
        try:
            message = await source.receive(timeout=wait)
        except TimeoutError:
            reason = f"no frame within {wait:g} s"
            await source.close(code=1008, message=reason.encode())
            return 1000, reason
        wait = None
        if message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == WSMsgType.CLOSE:
            code = message.data if message.data not in _NO_STATUS else 1000
            return int(code), str(message.extra or "")
        elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            code = source.close_code
            return (1011, "connection lost") if code in _NO_STATUS else (int(code or 1000), "")
