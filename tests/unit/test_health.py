"""`GET /health`: the handler and how it is registered."""

import json

import azure.functions as func

from shared.api import health


def test_health_answers_ok() -> None:
    req = func.HttpRequest(method="GET", url="http://127.0.0.1:7071/health", body=b"")

    resp = health.health(req)

    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert json.loads(resp.get_body()) == {"status": "ok"}


def test_health_is_an_anonymous_get_on_the_full_path() -> None:
    # A fresh FunctionApp: get_functions() may be called once per app object.
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(health.bp)

    (fn,) = [f for f in app.get_functions() if f.get_function_name() == "health"]
    bindings = json.loads(fn.get_function_json())["bindings"]
    (trigger,) = [b for b in bindings if b["type"] == "httpTrigger"]

    assert trigger["route"] == "health"
    assert [m.upper() for m in trigger["methods"]] == ["GET"]
    assert trigger["authLevel"].lower() == "anonymous"
