"""The client endpoint: `/client/hubs/{hub}` (and `/client/?hub=`), plain or PubSub WebSocket.

Handshake: the token is checked (401 when missing, bad, expired or for another hub), then
the blocking `connect` event goes to the hub's handler when it has one; a 4xx from it is
the client's answer (no upgrade), any other failure a 500. Its 200 body may set `userId`,
`groups`, `roles` and `subprotocol`. After the upgrade a PubSub client gets the `connected`
system message, and the `connected` event goes out without being waited for; the
`disconnected` event follows the end of every connection that got that far.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .auth import AuthError, ClientIdentity, verify_client_token
from .hub import (
    CLOSE_POLICY,
    CLOSE_UNSUPPORTED,
    CLOSE_UPSTREAM_ERROR,
    PUBSUB_PROTOCOLS,
    Connection,
    Payload,
    RateLimiter,
)
from .settings import HUB_NAME
from .upstream import UpstreamError

if TYPE_CHECKING:
    from .service import PubSubService

log = logging.getLogger("pubsubhost")

MAX_GROUP_NAME = 1024
_CONTENT_TYPES = {
    "json": "application/json",
    "text": "text/plain",
    "binary": "application/octet-stream",
}


class Refused(Exception):
    """Closes the connection with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _multi(items: Any) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for key, value in items:
        result.setdefault(key, []).append(value)
    return result


def _token(request: web.Request) -> str | None:
    if "access_token" in request.query:
        return request.query["access_token"]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _payload_from_client(data_type: Any, data: Any) -> Payload:
    """A subprotocol message's `dataType`/`data` as bytes (raises Refused when malformed)."""
    kind = data_type if data_type is not None else "json"
    if kind == "json":
        return Payload(json.dumps(data, separators=(",", ":")).encode(), "json")
    if kind == "text" and isinstance(data, str):
        return Payload(data.encode(), "text")
    if kind in ("binary", "protobuf") and isinstance(data, str):
        try:
            return Payload(base64.b64decode(data, validate=True), "binary")
        except binascii.Error:
            pass
    raise Refused(CLOSE_UNSUPPORTED, f"invalid data for dataType {kind!r}")


def _payload_from_response(body: bytes, content_type: str) -> Payload:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/octet-stream":
        return Payload(body, "binary")
    if kind == "application/json":
        return Payload(body, "json")
    return Payload(body, "text")


class ClientEndpoint:
    def __init__(self, service: PubSubService) -> None:
        self.service = service
        self.settings = service.settings
        self.limits = service.settings.limits

    async def handle(self, request: web.Request) -> web.StreamResponse:
        hub_name = request.match_info.get("hub") or request.query.get("hub", "")
        if not HUB_NAME.match(hub_name):
            return web.json_response({"message": "invalid hub name"}, status=400)
        if self.service.connection_count >= self.limits.max_connections:
            return web.json_response({"message": "too many connections"}, status=429)
        self.service.connection_count += 1
        try:
            return await self._handle(request, hub_name)
        finally:
            self.service.connection_count -= 1

    def _identity(self, request: web.Request, hub_name: str) -> ClientIdentity:
        token = _token(request)
        if token is None:
            if self.settings.hub(hub_name).allow_anonymous:
                return ClientIdentity(None, frozenset(), (), {})
            raise AuthError("an access token is required")
        return verify_client_token(
            token, self.settings.access_key, hub_name, self.service.hosts(request)
        )

    async def _handle(self, request: web.Request, hub_name: str) -> web.StreamResponse:
        try:
            identity = self._identity(request, hub_name)
        except AuthError as error:
            log.info("connection to hub %s refused: %s", hub_name, error)
            return web.json_response({"message": str(error)}, status=401)
        hub_settings = self.settings.hub(hub_name)
        hub = self.service.hub(hub_name)
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        offered = [p for p in offered if p]
        known = [p for p in offered if p in PUBSUB_PROTOCOLS]
        connection = Connection(
            id=secrets.token_urlsafe(16),
            hub=hub_name,
            user_id=identity.user_id,
            roles=set(identity.roles),
            subprotocol=known[0] if known else None,
            ws=web.WebSocketResponse(),  # replaced once the subprotocol is known
            max_queue=self.limits.max_outbound_queue,
            rate=RateLimiter(self.limits.max_messages_per_second),
        )
        groups = list(identity.groups)

        connect = hub_settings.handler_for("connect", system=True)
        if connect is not None:
            body = {
                "claims": identity.claims,
                "query": {
                    k: v for k, v in _multi(request.query.items()).items() if k != "access_token"
                },
                "headers": _multi(
                    (k, v) for k, v in request.headers.items() if k.lower() != "authorization"
                ),
                "subprotocols": offered,
                "clientCertificates": [],
            }
            try:
                answer = await self.service.upstream.send(
                    connect,
                    connection,
                    "connect",
                    system=True,
                    body=json.dumps(body).encode(),
                    content_type="application/json; charset=utf-8",
                )
            except UpstreamError as error:
                log.warning("connect event failed: %s", error)
                return web.json_response({"message": "the event handler failed"}, status=500)
            if not answer.ok:
                status = answer.status if 400 <= answer.status < 500 else 500
                log.info("connect refused by the event handler: %s", answer.status)
                return web.Response(status=status, body=answer.body if status < 500 else b"")
            connection.state = answer.connection_state or connection.state
            if answer.status == 200 and answer.body:
                try:
                    result = json.loads(answer.body)
                except ValueError:
                    result = {}
                if isinstance(result, dict):
                    if isinstance(result.get("userId"), str) and result["userId"]:
                        connection.user_id = result["userId"]
                    groups += [g for g in result.get("groups") or [] if isinstance(g, str)]
                    connection.roles |= {r for r in result.get("roles") or [] if isinstance(r, str)}
                    chosen = result.get("subprotocol")
                    if connection.subprotocol is None and chosen in offered:
                        connection.subprotocol = chosen

        ws = connection.ws = web.WebSocketResponse(
            protocols=(connection.subprotocol,) if connection.subprotocol else (),
            max_msg_size=self.limits.max_frame_bytes,
            heartbeat=30.0,
        )
        await ws.prepare(request)
        hub.add(connection, groups[: self.limits.max_groups_per_connection])
        writer = asyncio.create_task(connection.write_loop())
        log.info(
            "connected %s to hub %s (user %s, subprotocol %s)",
            connection.id,
            hub_name,
            connection.user_id,
            connection.subprotocol,
        )
        if connection.is_pubsub:
            connected: dict[str, Any] = {
                "type": "system",
                "event": "connected",
                "connectionId": connection.id,
            }
            if connection.user_id is not None:
                connected["userId"] = connection.user_id
            connection.send_json(connected)
        self.service.fire_and_forget(connection, "connected", b"{}")

        reason = "the client closed the connection"
        try:
            reason = await self._read_loop(connection)
        finally:
            hub.remove(connection)
            connection.closing = True
            writer.cancel()
            if not ws.closed:
                await ws.close()
            log.info("disconnected %s from hub %s: %s", connection.id, hub_name, reason)
            self.service.fire_and_forget(
                connection, "disconnected", json.dumps({"reason": reason}).encode()
            )
        return ws

    async def _read_loop(self, connection: Connection) -> str:
        ws = connection.ws
        while True:
            receive = asyncio.ensure_future(ws.receive())
            flushed = asyncio.ensure_future(connection.flushed.wait())
            await asyncio.wait({receive, flushed}, return_when=asyncio.FIRST_COMPLETED)
            flushed.cancel()
            if not receive.done():
                receive.cancel()
                await ws.close(
                    code=connection.close_code, message=connection.close_reason.encode()[:120]
                )
                break
            message = receive.result()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            if message.type == WSMsgType.ERROR:
                return f"transport error: {ws.exception()}"
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            if connection.closing:
                continue
            try:
                if not connection.rate.allow():
                    raise Refused(CLOSE_POLICY, "message rate limit exceeded")
                if connection.is_pubsub:
                    await self._on_pubsub_frame(connection, message.type, message.data)
                else:
                    await self._on_plain_frame(connection, message.type, message.data)
            except Refused as refused:
                log.info("closing %s: %s", connection.id, refused.reason)
                connection.close(refused.code, refused.reason)
        if ws.close_code == 1009:
            return "the message was too big"
        return connection.close_reason if connection.closing else "the client closed the connection"

    async def _user_event(
        self, connection: Connection, event: str, payload: Payload
    ) -> Payload | None:
        """Posts a user event; returns what the handler answered (None: nothing, or no handler)."""
        handler = self.settings.hub(connection.hub).handler_for(event, system=False)
        if handler is None:
            return None
        content_type = _CONTENT_TYPES[payload.data_type]
        if payload.data_type == "text":
            content_type += "; charset=utf-8"
        try:
            answer = await self.service.upstream.send(
                handler,
                connection,
                event,
                system=False,
                body=payload.body,
                content_type=content_type,
            )
        except UpstreamError as error:
            raise Refused(CLOSE_UPSTREAM_ERROR, f"the event handler failed: {error}") from None
        if not answer.ok:
            raise Refused(CLOSE_UPSTREAM_ERROR, f"the event handler answered {answer.status}")
        if answer.connection_state is not None:
            connection.state = answer.connection_state
        if answer.status == 204 or not answer.body:
            return None
        return _payload_from_response(answer.body, answer.content_type)

    async def _on_plain_frame(self, connection: Connection, kind: WSMsgType, data: Any) -> None:
        if kind == WSMsgType.TEXT:
            payload = Payload(data.encode(), "text")
        else:
            payload = Payload(bytes(data), "binary")
        reply = await self._user_event(connection, "message", payload)
        if reply is not None:
            connection.deliver(reply, group=None)

    async def _on_pubsub_frame(self, connection: Connection, kind: WSMsgType, data: Any) -> None:
        if kind != WSMsgType.TEXT:
            raise Refused(CLOSE_UNSUPPORTED, "the JSON subprotocol takes text frames only")
        try:
            message = json.loads(data)
        except ValueError:
            raise Refused(CLOSE_UNSUPPORTED, "the frame is not JSON") from None
        if not isinstance(message, dict):
            raise Refused(CLOSE_UNSUPPORTED, "the frame is not a JSON object")
        kind_name = message.get("type")
        if kind_name == "sequenceAck":
            return
        ack_id = message.get("ackId")
        if ack_id is not None and (not isinstance(ack_id, int) or isinstance(ack_id, bool)):
            raise Refused(CLOSE_UNSUPPORTED, "ackId is an integer")
        if ack_id is not None and connection.seen_ack(ack_id):
            connection.ack(ack_id, ("Duplicate", "the message with this ackId was processed"))
            return
        hub = self.service.hub(connection.hub)
        if kind_name in ("joinGroup", "leaveGroup", "sendToGroup"):
            group = message.get("group")
            if not isinstance(group, str) or not 0 < len(group) <= MAX_GROUP_NAME:
                raise Refused(CLOSE_UNSUPPORTED, "group must be a name of 1 to 1024 characters")
            permission = "sendToGroup" if kind_name == "sendToGroup" else "joinLeaveGroup"
            if not connection.can(permission, group):
                verb = {"joinGroup": "join", "leaveGroup": "leave", "sendToGroup": "send to"}
                connection.ack(
                    ack_id,
                    (
                        "Forbidden",
                        f"The client does not have permission to "
                        f"{verb[kind_name]} group '{group}'.",
                    ),
                )
                return
            if kind_name == "joinGroup":
                if (
                    group not in connection.groups
                    and len(connection.groups) >= self.limits.max_groups_per_connection
                ):
                    connection.ack(ack_id, ("Forbidden", "too many groups for one connection"))
                    return
                hub.join(connection, group)
            elif kind_name == "leaveGroup":
                hub.leave(connection, group)
            else:
                payload = _payload_from_client(message.get("dataType"), message.get("data"))
                for member in list(hub.groups.get(group, ())):
                    if member is connection and message.get("noEcho"):
                        continue
                    member.deliver(payload, group=group, from_user=connection.user_id)
            connection.ack(ack_id)
        elif kind_name == "event":
            event = message.get("event")
            if not isinstance(event, str) or not event:
                raise Refused(CLOSE_UNSUPPORTED, "event needs a name")
            payload = _payload_from_client(message.get("dataType"), message.get("data"))
            try:
                reply = await self._user_event(connection, event, payload)
            except Refused:
                connection.ack(ack_id, ("InternalServerError", "the event handler failed"))
                raise
            connection.ack(ack_id)
            if reply is not None:
                connection.deliver(reply, group=None)
        else:
            raise Refused(CLOSE_UNSUPPORTED, f"unknown message type {kind_name!r}")
