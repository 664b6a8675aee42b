"""The service: hubs, the client endpoint and the REST API the service SDK calls.

REST paths are those of `azure-messaging-webpubsubservice` 1.3.0 (api-version 2024-12-01),
each with `api-version` and `Authorization: Bearer <JWT>` whose `aud` is the request URL.
Status codes are the ones the SDK expects: 202 for sends, 200 for adds and grants,
204 for removes and closes, 200/404 for the HEAD checks.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp import web

from .auth import AuthError, verify_rest_token
from .client_endpoint import MAX_GROUP_NAME, ClientEndpoint
from .hub import CLOSE_GOING_AWAY, CLOSE_NORMAL, Connection, Hub, Payload
from .settings import HUB_NAME, Settings
from .upstream import Upstream, UpstreamError

log = logging.getLogger("pubsubhost")

_PERMISSIONS = ("sendToGroup", "joinLeaveGroup")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


class PubSubService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hubs: dict[str, Hub] = {}
        self.connection_count = 0
        self.upstream = Upstream(
            settings.access_key,
            origin=settings.endpoint_host,
            timeout=settings.limits.upstream_timeout_seconds,
            max_body=settings.limits.max_frame_bytes,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = self._build_app()

    # -- plumbing ---------------------------------------------------------------------------

    def hub(self, name: str) -> Hub:
        if name not in self.hubs:
            self.hubs[name] = Hub(name)
        return self.hubs[name]

    def hosts(self, request: web.Request) -> set[str]:
        """The hosts an audience may name: the one the request came to, and ours."""
        own = f"{self.settings.endpoint_host}:{self.settings.port}".lower()
        return {(request.host or "").lower(), own}

    def fire_and_forget(self, connection: Connection, event: str, body: bytes) -> None:
        """A non-blocking system event (`connected`, `disconnected`): failures are logged."""
        handler = self.settings.hub(connection.hub).handler_for(event, system=True)
        if handler is None:
            return

        async def send() -> None:
            try:
                answer = await self.upstream.send(
                    handler,
                    connection,
                    event,
                    system=True,
                    body=body,
                    content_type="application/json; charset=utf-8",
                )
                if not answer.ok:
                    log.warning("%s event: the event handler answered %s", event, answer.status)
            except UpstreamError as error:
                log.warning("%s", error)

        task = asyncio.create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        for hub in self.hubs.values():
            for connection in list(hub.connections.values()):
                connection.close(CLOSE_GOING_AWAY, "the service is stopping")
        await asyncio.sleep(0.1)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        await self.upstream.close()

    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._rest_auth], client_max_size=self.settings.limits.max_request_bytes
        )
        client = ClientEndpoint(self)
        base = "/api/hubs/{hub}"
        app.router.add_get("/client/hubs/{hub}", client.handle)
        app.router.add_get("/client/", client.handle)
        app.router.add_get("/", self._health)
        app.router.add_post(base + "/:send", self._send_to_all)
        app.router.add_post(base + "/:generateToken", self._generate_token)
        app.router.add_post(base + "/:closeConnections", self._close_all)
        app.router.add_post(base + "/users/{user}/:send", self._send_to_user)
        app.router.add_post(base + "/users/{user}/:closeConnections", self._close_user)
        app.router.add_head(base + "/users/{user}", self._user_exists)
        app.router.add_put(base + "/users/{user}/groups/{group}", self._add_user_to_group)
        app.router.add_delete(base + "/users/{user}/groups/{group}", self._remove_user_from_group)
        app.router.add_delete(base + "/users/{user}/groups", self._remove_user_from_all_groups)
        app.router.add_post(base + "/groups/{group}/:send", self._send_to_group)
        app.router.add_post(base + "/groups/{group}/:closeConnections", self._close_group)
        app.router.add_head(base + "/groups/{group}", self._group_exists)
        app.router.add_get(base + "/groups/{group}/connections", self._list_connections)
        app.router.add_put(base + "/groups/{group}/connections/{conn}", self._add_to_group)
        app.router.add_delete(base + "/groups/{group}/connections/{conn}", self._remove_from_group)
        app.router.add_post(base + "/connections/{conn}/:send", self._send_to_connection)
        app.router.add_head(base + "/connections/{conn}", self._connection_exists)
        app.router.add_delete(base + "/connections/{conn}", self._close_connection)
        app.router.add_delete(base + "/connections/{conn}/groups", self._remove_from_all_groups)
        perm = base + "/permissions/{permission}/connections/{conn}"
        app.router.add_put(perm, self._grant_permission)
        app.router.add_delete(perm, self._revoke_permission)
        app.router.add_head(perm, self._has_permission)
        return app

    @web.middleware
    async def _rest_auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        try:
            verify_rest_token(
                request.headers.get("Authorization"),
                self.settings.access_key,
                request.path,
                self.hosts(request),
            )
        except AuthError as error:
            return _error(401, "Unauthorized", str(error))
        if "api-version" not in request.query:
            return _error(400, "BadRequest", "api-version is required")
        hub = request.match_info.get("hub", "")
        if not HUB_NAME.match(hub):
            return _error(400, "BadRequest", f"invalid hub name {hub!r}")
        group = request.match_info.get("group")
        if group is not None and not 0 < len(group) <= MAX_GROUP_NAME:
            return _error(400, "BadRequest", "a group name has 1 to 1024 characters")
        if request.query.get("filter"):
            return _error(400, "BadRequest", "this stand-in does not evaluate OData filters")
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"service": "pubsubhost", "hubs": sorted(self.hubs)})

    def _hub(self, request: web.Request) -> Hub:
        return self.hub(request.match_info["hub"])

    async def _payload(self, request: web.Request) -> Payload:
        body = await request.read()
        try:
            return Payload.from_content_type(body, request.headers.get("Content-Type", ""))
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None

    @staticmethod
    def _deliver(targets: Any, payload: Payload, request: web.Request, group: str | None) -> None:
        excluded = set(request.query.getall("excluded", []))
        for connection in list(targets):
            if connection.id not in excluded:
                connection.deliver(payload, group=group)

    def _connection(self, request: web.Request) -> Connection | None:
        return self._hub(request).connections.get(request.match_info["conn"])

    @staticmethod
    def _close_all_of(connections: Any, request: web.Request) -> web.Response:
        excluded = set(request.query.getall("excluded", []))
        reason = request.query.get("reason", "closed by the server")
        for connection in list(connections):
            if connection.id not in excluded:
                connection.close(CLOSE_NORMAL, reason)
        return web.Response(status=204)

    # -- sends --------------------------------------------------------------------------------

    async def _send_to_all(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        self._deliver(self._hub(request).connections.values(), payload, request, None)
        return web.Response(status=202)

    async def _send_to_user(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        targets = self._hub(request).user_connections(request.match_info["user"])
        self._deliver(targets, payload, request, None)
        return web.Response(status=202)

    async def _send_to_group(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        group = request.match_info["group"]
        targets = self._hub(request).groups.get(group, set())
        self._deliver(targets, payload, request, group)
        return web.Response(status=202)

    async def _send_to_connection(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        connection = self._connection(request)
        if connection is not None:
            connection.deliver(payload, group=None)
        return web.Response(status=202)

    # -- groups and users ---------------------------------------------------------------------

    async def _add_to_group(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None:
            return _error(404, "NotFound", "no such connection")
        group = request.match_info["group"]
        limit = self.settings.limits.max_groups_per_connection
        if group not in connection.groups and len(connection.groups) >= limit:
            return _error(400, "BadRequest", f"a connection joins at most {limit} groups")
        self._hub(request).join(connection, group)
        return web.Response(status=200)

    async def _remove_from_group(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is not None:
            self._hub(request).leave(connection, request.match_info["group"])
        return web.Response(status=204)

    async def _remove_from_all_groups(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is not None:
            for group in list(connection.groups):
                self._hub(request).leave(connection, group)
        return web.Response(status=204)

    async def _add_user_to_group(self, request: web.Request) -> web.Response:
        self._hub(request).add_user_to_group(
            request.match_info["user"], request.match_info["group"]
        )
        return web.Response(status=200)

    async def _remove_user_from_group(self, request: web.Request) -> web.Response:
        hub = self._hub(request)
        hub.remove_user_from_group(request.match_info["user"], request.match_info["group"])
        return web.Response(status=204)

    async def _remove_user_from_all_groups(self, request: web.Request) -> web.Response:
        self._hub(request).remove_user_from_group(request.match_info["user"], None)
        return web.Response(status=204)

    async def _list_connections(self, request: web.Request) -> web.Response:
        members = sorted(
            self._hub(request).groups.get(request.match_info["group"], set()), key=lambda c: c.id
        )
        top = request.query.get("top")
        if top is not None and top.isdigit():
            members = members[: int(top)]
        value = [{"connectionId": c.id, "userId": c.user_id} for c in members]
        return web.json_response({"value": value})

    # -- existence, closing, permissions ------------------------------------------------------

    async def _connection_exists(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self._connection(request) else 404)

    async def _group_exists(self, request: web.Request) -> web.Response:
        found = bool(self._hub(request).groups.get(request.match_info["group"]))
        return web.Response(status=200 if found else 404)

    async def _user_exists(self, request: web.Request) -> web.Response:
        found = bool(self._hub(request).user_connections(request.match_info["user"]))
        return web.Response(status=200 if found else 404)

    async def _close_connection(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is not None:
            connection.close(CLOSE_NORMAL, request.query.get("reason", "closed by the server"))
        return web.Response(status=204)

    async def _close_all(self, request: web.Request) -> web.Response:
        return self._close_all_of(self._hub(request).connections.values(), request)

    async def _close_user(self, request: web.Request) -> web.Response:
        hub = self._hub(request)
        return self._close_all_of(hub.user_connections(request.match_info["user"]), request)

    async def _close_group(self, request: web.Request) -> web.Response:
        members = self._hub(request).groups.get(request.match_info["group"], set())
        return self._close_all_of(members, request)

    def _role(self, request: web.Request) -> tuple[Connection | None, str]:
        permission = request.match_info["permission"]
        if permission not in _PERMISSIONS:
            raise web.HTTPBadRequest(text=f"permission is one of {', '.join(_PERMISSIONS)}")
        target = request.query.get("targetName")
        role = f"webpubsub.{permission}" + (f".{target}" if target else "")
        return self._connection(request), role

    async def _grant_permission(self, request: web.Request) -> web.Response:
        connection, role = self._role(request)
        if connection is None:
            return _error(404, "NotFound", "no such connection")
        connection.roles.add(role)
        return web.Response(status=200)

    async def _revoke_permission(self, request: web.Request) -> web.Response:
        connection, role = self._role(request)
        if connection is not None:
            connection.roles.discard(role)
        return web.Response(status=204)

    async def _has_permission(self, request: web.Request) -> web.Response:
        connection, role = self._role(request)
        return web.Response(status=200 if connection and role in connection.roles else 404)

    async def _generate_token(self, request: web.Request) -> web.Response:
        """What the SDK calls for a token when it holds an Entra ID credential, not a key."""
        hub = request.match_info["hub"]
        try:
            minutes = int(request.query.get("minutesToExpire", "60"))
        except ValueError:
            return _error(400, "BadRequest", "minutesToExpire is an integer")
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "aud": f"{self.settings.endpoint}/client/hubs/{hub}",
            "iat": now,
            "exp": now + timedelta(minutes=max(1, minutes)),
        }
        if request.query.get("userId"):
            claims["sub"] = request.query["userId"]
        if request.query.getall("role", []):
            claims["role"] = request.query.getall("role")
        if request.query.getall("group", []):
            claims["webpubsub.group"] = request.query.getall("group")
        token = jwt.encode(claims, self.settings.access_key, algorithm="HS256")
        return web.json_response({"token": token})
