"""Connections, groups and users of each hub, and how a message reaches a connection.

A message leaves as Azure sends it: to a plain WebSocket as the payload itself (text
frame for JSON and text, binary frame for octet-stream); to a connection on one of the
JSON subprotocols as `{"type": "message", "from": "server"|"group", "dataType": ..., "data": ...}`,
with a `sequenceId` on the reliable one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger("pubsubhost")

JSON_PROTOCOL = "json.webpubsub.azure.v1"
RELIABLE_PROTOCOL = "json.reliable.webpubsub.azure.v1"
PUBSUB_PROTOCOLS = (JSON_PROTOCOL, RELIABLE_PROTOCOL)

# Close codes (RFC 6455): what a client sees and why.
CLOSE_NORMAL = 1000  # closed through the REST API
CLOSE_GOING_AWAY = 1001  # the stand-in is stopping
CLOSE_UNSUPPORTED = 1003  # a frame the subprotocol does not define
CLOSE_POLICY = 1008  # rate limit, slow consumer, too many groups
CLOSE_TOO_BIG = 1009  # a frame over the size limit (aiohttp closes with it)
CLOSE_UPSTREAM_ERROR = 1011  # the event handler failed a blocking event

_SEEN_ACK_IDS = 1000


@dataclass(frozen=True)
class Payload:
    """A message as the REST API got it: its bytes and what they are."""

    body: bytes
    data_type: str  # "json", "text" or "binary"

    @classmethod
    def from_content_type(cls, body: bytes, content_type: str) -> Payload:
        kind = content_type.split(";")[0].strip().lower()
        if kind == "application/json":
            json.loads(body)  # ValueError when it is not JSON
            return cls(body, "json")
        if kind == "text/plain":
            body.decode("utf-8")
            return cls(body, "text")
        if kind == "application/octet-stream":
            return cls(body, "binary")
        raise ValueError(f"unsupported Content-Type {content_type!r}")

    def data(self) -> Any:
        if self.data_type == "json":
            return json.loads(self.body)
        if self.data_type == "text":
            return self.body.decode("utf-8")
        return base64.b64encode(self.body).decode("ascii")


class RateLimiter:
    """A token bucket: `rate` messages a second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(eq=False)
class Connection:
    id: str
    hub: str
    user_id: str | None
    roles: set[str]
    subprotocol: str | None
    ws: web.WebSocketResponse
    max_queue: int
    rate: RateLimiter
    groups: set[str] = field(default_factory=set)
    state: str | None = None  # ce-connectionState, set by the upstream
    closing: bool = False
    _sequence: int = 0
    _close: tuple[int, str] = (CLOSE_NORMAL, "")
    _outbox: asyncio.Queue[str | bytes | None] = field(init=False)
    _seen_acks: deque[int] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._outbox = asyncio.Queue(self.max_queue)
        self.flushed = asyncio.Event()

    @property
    def close_code(self) -> int:
        return self._close[0]

    @property
    def is_pubsub(self) -> bool:
        return self.subprotocol in PUBSUB_PROTOCOLS

    @property
    def close_reason(self) -> str:
        return self._close[1]

    def can(self, permission: str, group: str) -> bool:
        """`webpubsub.joinLeaveGroup` / `webpubsub.sendToGroup`, for any group or for one."""
        return f"webpubsub.{permission}" in self.roles or (
            f"webpubsub.{permission}.{group}" in self.roles
        )

    def seen_ack(self, ack_id: int) -> bool:
        """True when `ack_id` was used before (the service answers `Duplicate`)."""
        if ack_id in self._seen_acks:
            return True
        self._seen_acks.append(ack_id)
        if len(self._seen_acks) > _SEEN_ACK_IDS:
            self._seen_acks.popleft()
        return False

    def send_json(self, message: dict[str, Any]) -> None:
        self._put(json.dumps(message, separators=(",", ":")))

    def deliver(self, payload: Payload, group: str | None, from_user: str | None = None) -> None:
        if not self.is_pubsub:
            if payload.data_type == "binary":
                self._put(payload.body)
            else:
                self._put(payload.body.decode("utf-8"))
            return
        message: dict[str, Any] = {"type": "message"}
        if group is None:
            message["from"] = "server"
        else:
            message.update({"from": "group", "group": group})
            if from_user is not None:
                message["fromUserId"] = from_user
        message.update({"dataType": payload.data_type, "data": payload.data()})
        if self.subprotocol == RELIABLE_PROTOCOL:
            self._sequence += 1
            message["sequenceId"] = self._sequence
        self.send_json(message)

    def ack(self, ack_id: int | None, error: tuple[str, str] | None = None) -> None:
        if ack_id is None:
            return
        message: dict[str, Any] = {"type": "ack", "ackId": ack_id, "success": error is None}
        if error is not None:
            message["error"] = {"name": error[0], "message": error[1]}
        self.send_json(message)

    def _put(self, frame: str | bytes) -> None:
        if self.closing:
            return
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("connection %s: outbound queue full, dropping it", self.id)
            self.close(CLOSE_POLICY, "too many messages waiting for a slow client")

    def close(self, code: int, reason: str) -> None:
        """Ends the connection after what is queued (a `disconnected` message first)."""
        if self.closing:
            return
        if self.is_pubsub:
            self.send_json({"type": "system", "event": "disconnected", "message": reason})
        self.closing = True
        self._close = (code, reason)
        try:
            self._outbox.put_nowait(None)
        except asyncio.QueueFull:
            self.flushed.set()  # the queue is what is slow: close without it

    async def write_loop(self) -> None:
        """Sends the outbox in order; once `close()` was called and the outbox is sent, sets
        `flushed` for the reading task to close the WebSocket (aiohttp's close handshake
        must run in the task that reads, or it may drop the socket over unread frames)."""
        while True:
            frame = await self._outbox.get()
            if frame is None:
                self.flushed.set()
                return
            try:
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return


class Hub:
    """One hub's membership. Users keep their groups for connections that come later."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connections: dict[str, Connection] = {}
        self.groups: dict[str, set[Connection]] = {}
        self.user_groups: dict[str, set[str]] = {}

    def user_connections(self, user_id: str) -> list[Connection]:
        return [c for c in self.connections.values() if c.user_id == user_id]

    def add(self, connection: Connection, groups: Iterable[str]) -> None:
        self.connections[connection.id] = connection
        for group in groups:
            self.join(connection, group)
        if connection.user_id is not None:
            for group in self.user_groups.get(connection.user_id, ()):
                self.join(connection, group)

    def remove(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        for group in list(connection.groups):
            self.leave(connection, group)

    def join(self, connection: Connection, group: str) -> None:
        connection.groups.add(group)
        self.groups.setdefault(group, set()).add(connection)

    def leave(self, connection: Connection, group: str) -> None:
        connection.groups.discard(group)
        members = self.groups.get(group)
        if members is not None:
            members.discard(connection)
            if not members:
                del self.groups[group]

    def add_user_to_group(self, user_id: str, group: str) -> None:
        self.user_groups.setdefault(user_id, set()).add(group)
        for connection in self.user_connections(user_id):
            self.join(connection, group)

    def remove_user_from_group(self, user_id: str, group: str | None) -> None:
        """`group` None: from every group."""
        kept = self.user_groups.get(user_id, set())
        if group is None:
            kept.clear()
        else:
            kept.discard(group)
        if not kept:
            self.user_groups.pop(user_id, None)
        for connection in self.user_connections(user_id):
            for name in [group] if group is not None else list(connection.groups):
                self.leave(connection, name)
