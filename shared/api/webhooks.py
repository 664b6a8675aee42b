"""Signed webhooks: subscribe, list, unsubscribe, the delivery log (the paths softqcos-sdk's
`client.webhooks` calls), and the queue function that delivers."""

from __future__ import annotations

import azure.functions as func

from shared.http import Operation, Reply, RequestContext, handle
from shared.services import services
from shared.storage.clients import WEBHOOK_DELIVERIES_QUEUE
from shared.webhooks.schemas import (
    CreateWebhookRequest,
    DeliveriesQuery,
    DeliveryList,
    WebhookList,
    WebhookView,
)

bp = func.Blueprint()

_SIGNATURE = (
    "Each delivery is a POST of the event (`{id, type, created_at, data: {job_id, kind, status, "
    "backend}}`) signed `X-QCOS-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "
    '"<t>.<body>")>`, with `X-QCOS-Event` and `X-QCOS-Delivery`. A receiver answering other '
    "than 2xx, or not within the timeout, is tried again with a growing delay."
)

CREATE = Operation(
    "POST",
    "/api/v1/webhooks",
    "Subscribe a URL to your job events",
    WebhookView,
    body=CreateWebhookRequest,
    status=201,
    tag="webhooks",
    errors=(400, 401, 413, 422, 429, 503),
    description="The answer carries the signing secret once; later reads mask it. The URL must "
    "be https and resolve to public addresses only. " + _SIGNATURE,
)
LIST = Operation(
    "GET",
    "/api/v1/webhooks",
    "Your webhooks and the event catalog",
    WebhookList,
    tag="webhooks",
    errors=(401, 429, 503),
    description="Each webhook with its secret masked, and the events a webhook may name.",
)
DELETE = Operation(
    "DELETE",
    "/api/v1/webhooks/{webhook_id}",
    "Unsubscribe",
    None,
    status=204,
    tag="webhooks",
    errors=(401, 404, 429, 503),
    description="Deliveries already queued for it are dropped.",
)
DELIVERIES = Operation(
    "GET",
    "/api/v1/webhooks/{webhook_id}/deliveries",
    "A webhook's delivery log",
    DeliveryList,
    query=DeliveriesQuery,
    tag="webhooks",
    errors=(401, 404, 422, 429, 503),
    description="Every attempt, newest first: its outcome, the receiver's status and the time "
    "it took.",
)


@CREATE.route(bp)
def create_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CREATE, _create)


@LIST.route(bp)
def list_webhooks(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LIST, _list)


@DELETE.route(bp)
def delete_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, DELETE, _delete)


@DELIVERIES.route(bp)
def webhook_deliveries(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, DELIVERIES, _deliveries)


@bp.queue_trigger(
    arg_name="msg", queue_name=WEBHOOK_DELIVERIES_QUEUE, connection="AzureWebJobsStorage"
)
def deliver_webhook(msg: func.QueueMessage) -> None:
    """Send one delivery; raising (storage down) leaves the message for a retry."""
    services().webhooks.deliver(msg.get_body().decode("utf-8", errors="replace"))


def _create(ctx: RequestContext[CreateWebhookRequest]) -> WebhookView:
    return services().webhooks.create(ctx.user.user_id, ctx.body)


def _list(ctx: RequestContext[None]) -> WebhookList:
    return services().webhooks.list(ctx.user.user_id)


def _delete(ctx: RequestContext[None]) -> Reply:
    services().webhooks.delete(ctx.user.user_id, ctx.params["webhook_id"])
    return Reply("", status=204, media_type="text/plain")


def _deliveries(ctx: RequestContext[None]) -> DeliveryList:
    limit = ctx.query.limit
    return services().webhooks.deliveries(ctx.user.user_id, ctx.params["webhook_id"], limit)
