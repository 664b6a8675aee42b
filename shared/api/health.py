"""Probes: `GET /` (version and queue reachability), `GET /health` (liveness, touches nothing),
`GET /ready` (tables, queues and blobs answer)."""

from __future__ import annotations

import azure.functions as func
from pydantic import BaseModel, Field

from shared.config import get_settings
from shared.http import Auth, Operation, Reply, RequestContext, handle
from shared.services import services
from shared.storage.probes import queue_reachable, readiness

bp = func.Blueprint()


class RootStatus(BaseModel):
    status: str = Field(
        examples=["healthy"], description="healthy, or degraded when the queue does not answer"
    )
    version: str = Field(examples=["0.2.0"])
    queue_connected: bool


class Liveness(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"], description="ready or not_ready")
    checks: dict[str, str] = Field(examples=[{"tables": "ok", "queues": "ok", "blobs": "ok"}])


# The host serves the site root only through an empty optional parameter (and, in Azure, with
# AzureWebJobsDisableHomepage set).
ROOT = Operation(
    "GET",
    "/",
    "Service status",
    RootStatus,
    auth=Auth.PUBLIC,
    tag="health",
    description="The version, and whether the job queue answers within 2 s.",
    route_template="{ignored:maxlength(0)?}",
)
HEALTH = Operation(
    "GET",
    "/health",
    "Liveness",
    Liveness,
    auth=Auth.PUBLIC,
    tag="health",
    description="Answers while the app is loaded; touches no storage.",
)
READY = Operation(
    "GET",
    "/ready",
    "Readiness",
    Readiness,
    auth=Auth.PUBLIC,
    tag="health",
    errors=(503,),
    description="200 when tables, queues and blobs answer, else 503 with the failing checks.",
)


@ROOT.route(bp)
def root(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, ROOT, _root)


@HEALTH.route(bp)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, HEALTH, lambda ctx: Liveness(status="ok"))


@READY.route(bp)
def ready(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, READY, _ready)


def _root(ctx: RequestContext[None]) -> RootStatus:
    connected = queue_reachable(services().storage)
    return RootStatus(
        status="healthy" if connected else "degraded",
        version=get_settings().version,
        queue_connected=connected,
    )


def _ready(ctx: RequestContext[None]) -> Reply:
    checks = readiness(services().storage)
    ok = all(v == "ok" for v in checks.values())
    return Reply(
        Readiness(status="ready" if ok else "not_ready", checks=checks), status=200 if ok else 503
    )
