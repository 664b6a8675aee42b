"""Liveness probe: `GET /health`."""

from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Answer 200 with `{"status": "ok"}` while the app is loaded."""
    return func.HttpResponse(
        json.dumps({"status": "ok"}, separators=(",", ":")),
        status_code=200,
        mimetype="application/json",
    )
