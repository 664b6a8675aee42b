"""The live stream's functions: negotiate a client URL, and Web PubSub's event handler.

Azure Functions cannot hold a WebSocket: clients connect to Azure Web PubSub, and the
service posts their frames here as CloudEvents (`shared.stream.service`). Locally funchost
serves the reference's `ws://.../api/v2/network/stream` by proxying to the service.
"""

from __future__ import annotations

import azure.functions as func

from shared.http import Auth, Operation, RequestContext, handle
from shared.services import services
from shared.stream.schemas import StreamUrl

bp = func.Blueprint()


NEGOTIATE = Operation(
    "POST",
    "/api/v2/network/stream/negotiate",
    "A WebSocket URL for live updates",
    StreamUrl,
    tag="network",
    errors=(401, 429, 503),
    description="A short-lived URL of the Web PubSub hub for the caller, already subscribed "
    "to `job_updates` (its own jobs) and `backend_status`. Locally the reference's "
    "`/api/v2/network/stream` takes a plain WebSocket and an `api_key` frame instead.",
)


@NEGOTIATE.route(bp)
def stream_negotiate(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, NEGOTIATE, _negotiate)


def _negotiate(ctx: RequestContext[None]) -> StreamUrl:
    return StreamUrl(url=services().stream.negotiate(ctx.user.user_id))


EVENTS = Operation(
    "POST",
    "/api/webpubsub/events",
    "Web PubSub's event handler",
    None,
    auth=Auth.PUBLIC,
    tag="network",
    description="Called by Azure Web PubSub, not by clients: CloudEvents in binary mode, each "
    "checked on its `ce-signature` (401 without a valid one). A `message` event is a client's "
    "subscription frame, acknowledged to the client before its connection joins its groups.",
)
EVENTS_VALIDATION = Operation(
    "OPTIONS",
    "/api/webpubsub/events",
    "Web PubSub's abuse-protection check",
    None,
    auth=Auth.PUBLIC,
    tag="network",
    description="The CloudEvents webhook handshake: answers `WebHook-Allowed-Origin`.",
)


@EVENTS.route(bp)
def webpubsub_events(req: func.HttpRequest) -> func.HttpResponse:
    return _event(req)


@EVENTS_VALIDATION.route(bp)
def webpubsub_validate(req: func.HttpRequest) -> func.HttpResponse:
    return _event(req)


def _event(req: func.HttpRequest) -> func.HttpResponse:
    # Not through `handle()`: the caller is the service, authenticated by its signature.
    answer = services().stream.handle_event(req.method, req.headers, req.get_body() or b"")
    return func.HttpResponse(answer.body, status_code=answer.status, headers=answer.headers)
