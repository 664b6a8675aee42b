"""The durable management API under /runtime/webhooks/durabletask/.

The SDK's DurableOrchestrationClient calls these (its `rpcBaseUrl` points here), and so
do the management URLs of `create_check_status_response`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..http_server import DURABLE_PREFIX as PREFIX
from .engine import (
    DurableEngine,
    InstanceConflict,
    InstanceGone,
    InstanceNotFound,
    UnknownOrchestrator,
)
from .history import for_sdk
from .store import Instance


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def status_json(
    inst: Instance, history: list[dict[str, Any]] | None = None, show_input: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": inst.name,
        "instanceId": inst.instance_id,
        "runtimeStatus": inst.status,
        "input": _loads(inst.input) if show_input else None,
        "customStatus": _loads(inst.custom_status),
        "output": _loads(inst.output),
        "createdTime": inst.created,
        "lastUpdatedTime": inst.updated,
    }
    if history is not None:
        body["historyEvents"] = for_sdk(history, True)
    return body


def json_text(body: bytes) -> str | None:
    """The JSON text of an input or event posted to the API; raises ValueError if not JSON.

    The SDK's client posts the already-serialized input as a JSON string (so the body is
    a string literal holding JSON); curl users post the JSON itself. Both give the same.
    """
    text = body.decode("utf-8").strip()
    if not text:
        return None
    value = json.loads(text)
    if isinstance(value, str):
        try:
            return json.dumps(json.loads(value))  # ASCII: every character fits a table property
        except json.JSONDecodeError:
            pass
    return json.dumps(value)


async def _accepted(action: Awaitable[None]) -> web.Response:
    """202 once `action` is done; 404 for an unknown instance, 410 for a finished one."""
    try:
        await action
    except InstanceNotFound:
        return web.Response(status=404)
    except InstanceGone:
        return web.Response(status=410)
    return web.Response(status=202)


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.lower() == "true"


class DurableWebhooks:
    """aiohttp handlers for the management API; routes are matched by hand."""

    def __init__(self, engine: DurableEngine, base_url: str) -> None:
        self.engine = engine
        self.base = f"{base_url}{PREFIX}"

    def _templates(self) -> dict[str, str]:
        """Management URLs with the INSTANCEID placeholder, as the real host gives them."""
        query = f"taskHub={self.engine.store.hub}&connection=Storage"
        instance = f"{self.base}instances/INSTANCEID"
        return {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
        }

    def management_urls(self, instance_id: str) -> dict[str, str]:
        quoted = quote(instance_id, safe="")
        urls = {k: v.replace("INSTANCEID", quoted) for k, v in self._templates().items()}
        urls["id"] = instance_id
        return urls

    def client_binding_json(self) -> str:
        """The durable client binding's value: what DurableOrchestrationClient is built from."""
        query = f"taskHub={self.engine.store.hub}&connection=Storage"
        create = f"{self.base}orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps(
            {
                "taskHubName": self.engine.store.hub,
                "creationUrls": {
                    "createNewInstancePostUri": f"{create}?{query}",
                    "createAndWaitOnNewInstancePostUri": f"{create}?timeout={{timeoutInSeconds}}"
                    f"&pollingInterval={{intervalInSeconds}}&{query}",
                },
                "managementUrls": self._templates(),
                "rpcBaseUrl": self.base,
                "requiredQueryStringParameters": "",
            }
        )

    async def handle(self, request: web.Request, tail: str) -> web.StreamResponse:
        method = request.method
        match = re.fullmatch(r"orchestrators/([^/]+)(?:/([^/]+))?/?", tail)
        if match and method == "POST":
            return await self._start(request, match.group(1), match.group(2))
        match = re.fullmatch(r"instances/([^/]+)/raiseEvent/([^/]+)/?", tail)
        if match and method == "POST":
            return await self._raise(request, match.group(1), match.group(2))
        match = re.fullmatch(r"instances/([^/]+)/terminate/?", tail)
        if match and method == "POST":
            return await self._terminate(request, match.group(1))
        match = re.fullmatch(r"instances/([^/]+)/?", tail)
        if match and method == "GET":
            return await self._status(request, match.group(1))
        if match and method == "DELETE":
            deleted = await self.engine.purge(match.group(1))
            return (
                web.json_response({"instancesDeleted": 1}, status=200)
                if deleted
                else web.Response(status=404)
            )
        if re.fullmatch(r"instances/?", tail) and method in ("GET", "DELETE"):
            return await self._query(request, purge=method == "DELETE")
        return web.json_response(
            {"error": f"no durable API at {method} {PREFIX}{tail}"}, status=404
        )

    async def _start(
        self, request: web.Request, name: str, instance_id: str | None
    ) -> web.Response:
        try:
            input_json = json_text(await request.read())
        except ValueError:
            return web.json_response({"ExceptionMessage": "The input must be JSON."}, status=400)
        try:
            inst = await self.engine.start_new(name, instance_id, input_json)
        except (UnknownOrchestrator, InstanceConflict) as exc:
            return web.json_response({"ExceptionMessage": str(exc)}, status=400)
        urls = self.management_urls(inst.instance_id)
        return web.json_response(urls, status=202, headers={"Location": urls["statusQueryGetUri"]})

    async def _status(self, request: web.Request, instance_id: str) -> web.Response:
        found = await self.engine.status(instance_id)
        if found is None:
            return web.Response(status=404)
        inst, history = found
        body = status_json(
            inst,
            history if _flag(request, "showHistory") else None,
            _flag(request, "showInput", True),
        )
        code = 202 if inst.status in ("Pending", "Running") else 200
        return web.json_response(body, status=code)

    async def _raise(self, request: web.Request, instance_id: str, name: str) -> web.Response:
        try:
            data = json_text(await request.read())
        except ValueError:
            return web.Response(status=400, text="Only JSON request content is supported")
        return await _accepted(self.engine.raise_event(instance_id, name, data))

    async def _terminate(self, request: web.Request, instance_id: str) -> web.Response:
        reason = request.query.get("reason", "")
        return await _accepted(self.engine.terminate(instance_id, reason))

    async def _query(self, request: web.Request, purge: bool) -> web.Response:
        statuses = request.query.get("runtimeStatus")
        found = await self.engine.query(
            statuses=set(statuses.split(",")) if statuses else None,
            prefix=request.query.get("instanceIdPrefix"),
            created_from=request.query.get("createdTimeFrom"),
            created_to=request.query.get("createdTimeTo"),
        )
        if purge:
            deleted = 0
            for inst in found:
                deleted += await self.engine.purge(inst.instance_id)
            return web.json_response({"instancesDeleted": deleted}, status=200 if deleted else 404)
        top = int(request.query.get("top", "0") or 0)
        items = sorted(found, key=lambda i: i.created)
        if top:
            items = items[:top]
        return web.json_response(
            [status_json(i, show_input=_flag(request, "showInput", True)) for i in items]
        )
