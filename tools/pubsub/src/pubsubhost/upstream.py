"""Events to the hub's event handler, as CloudEvents in HTTP binary mode.

Every request carries `ce-specversion: 1.0`, `ce-type` (`azure.webpubsub.sys.<event>` or
`azure.webpubsub.user.<event>`), `ce-source: /hubs/{hub}/client/{connectionId}`, `ce-id`,
`ce-time`, `ce-hub`, `ce-connectionId`, `ce-eventName`, `ce-userId` and `ce-subprotocol`
when known, `ce-connectionState` when the upstream set one, `ce-signature` and
`WebHook-Request-Origin`. Before the first event to a URL template the service makes the
CloudEvents abuse-protection check: `OPTIONS` on the template with `{event}` = `validate`,
which must answer with `WebHook-Allowed-Origin` of `*` or this service's host. Azure does
that when the handler is configured; here it is done once, on first use, and again after
a failure.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from .auth import signature
from .hub import Connection
from .settings import EventHandler

log = logging.getLogger("pubsubhost")


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    body: bytes
    content_type: str
    connection_state: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class UpstreamError(Exception):
    """The event handler could not be reached or refused the abuse-protection check."""


class Upstream:
    def __init__(self, access_key: str, origin: str, timeout: float, max_body: int) -> None:
        self.access_key = access_key
        self.origin = origin  # WebHook-Request-Origin: the service's host name
        self.max_body = max_body
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._validated: set[str] = set()
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _validate(self, handler: EventHandler) -> None:
        if handler.url_template in self._validated:
            return
        async with self._lock:
            if handler.url_template in self._validated:
                return
            url = handler.url("validate")
            try:
                async with self._client().options(
                    url, headers={"WebHook-Request-Origin": self.origin}
                ) as response:
                    allowed = response.headers.get("WebHook-Allowed-Origin", "")
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                raise UpstreamError(f"abuse-protection check of {url} failed: {error}") from None
            origins = {o.strip() for o in allowed.split(",")}
            if status != 200 or not ({"*", self.origin} & origins):
                raise UpstreamError(
                    f"abuse-protection check of {url}: status {status}, "
                    f"WebHook-Allowed-Origin {allowed!r} does not allow {self.origin!r}"
                )
            self._validated.add(handler.url_template)

    async def send(
        self,
        handler: EventHandler,
        connection: Connection,
        event: str,
        *,
        system: bool,
        body: bytes,
        content_type: str,
    ) -> UpstreamResponse:
        await self._validate(handler)
        kind = "sys" if system else "user"
        headers = {
            "Content-Type": content_type,
            "WebHook-Request-Origin": self.origin,
            "ce-specversion": "1.0",
            "ce-type": f"azure.webpubsub.{kind}.{event}",
            "ce-source": f"/hubs/{connection.hub}/client/{connection.id}",
            "ce-id": str(uuid.uuid4()),
            "ce-time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "ce-signature": signature(self.access_key, connection.id),
            "ce-hub": connection.hub,
            "ce-connectionId": connection.id,
            "ce-eventName": event,
        }
        if connection.user_id is not None:
            headers["ce-userId"] = connection.user_id
        if connection.subprotocol:
            headers["ce-subprotocol"] = connection.subprotocol
        if connection.state is not None:
            headers["ce-connectionState"] = connection.state
        url = handler.url(event)
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                data = await response.content.read(self.max_body + 1)
                if len(data) > self.max_body:
                    raise UpstreamError(f"{url} answered more than {self.max_body} bytes")
                return UpstreamResponse(
                    status=response.status,
                    body=data,
                    content_type=response.headers.get("Content-Type", ""),
                    connection_state=response.headers.get("ce-connectionState"),
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise UpstreamError(f"{event} event to {url} failed: {error}") from None
