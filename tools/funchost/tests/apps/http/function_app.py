"""HTTP sample app for funchost's tests: routing, request and response round trips."""

import asyncio
import json
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _json(value: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


@app.route(route="items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "item_by_id", "id": req.route_params["id"]})


@app.route(route="items/latest", methods=["GET"])
def latest_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "latest_item"})


@app.route(route="items/{slug}", methods=["GET"])
def item_by_slug(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "item_by_slug", "slug": req.route_params["slug"]})


@app.route(route="greet/{name?}", methods=["GET"])
def greet(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"Hello, {req.route_params.get('name') or 'world'}")


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"path": req.route_params.get("path")})


@app.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    seen = {
        "method": req.method,
        "params": dict(req.params),
        "x_test": req.headers.get("x-test"),
        "body": req.get_body().decode("utf-8"),
    }
    return func.HttpResponse(
        json.dumps(seen),
        status_code=201,
        mimetype="application/json",
        headers={"X-Echo": "yes", "Location": "/api/echo/1"},
    )


@app.route(route="binary", methods=["GET"])
def binary(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        b"\x00\x01\xfe\xff", status_code=203, mimetype="application/octet-stream"
    )


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret-detail-7f3a must stay in the log")


@app.route(route="slow")
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(1.0)
    return func.HttpResponse("slept")


@app.route(route="slow-async")
async def slow_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(1.0)
    return func.HttpResponse("slept")
