"""What answers a request no other function takes: the standard error body, with
`X-Request-ID`, instead of the host's empty 404.

A catch-all function (`{*path}`, every method) registered last. Its function name must sort
after every other HTTP function's: the Functions host matches routes in the order of the
functions' names (case-insensitive; `FunctionMetadataManager` orders them, and
`WebJobsRouteBuilder` keeps that order: no ASP.NET-style precedence), and a route whose
method does not match is skipped. So this function sees exactly the requests no other route
takes. From the registered operations (`shared.http.OPERATIONS`) it answers:

- a path no operation has: 404 NOT_FOUND;
- OPTIONS on a known path: 204 with `Allow`;
- HEAD on a path that has GET: the GET function's answer without its body;
- any other method on a known path: 405 METHOD_NOT_ALLOWED with `Allow`.

Under `/api/v2/` the error body has the v2 envelope (`"success": false`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import azure.functions as func

from shared.errors import ApiError, NotFound
from shared.http import HANDLERS, OPERATIONS, Auth, Operation, Reply, RequestContext, handle

# "_" sorts after every letter and digit in the host's upper-cased ordinal comparison.
FUNCTION_NAME = "zz_fallback"

bp = func.Blueprint()


def _segments(path: str) -> list[str]:
    return [part for part in path.strip("/").split("/") if part]


def _matches(template: str, path: str) -> bool:
    """Whether `path` is one of `template`'s (`{name}` takes one segment; literals ignore
    case, as the host's routing does)."""
    wanted, given = _segments(template), _segments(path)
    return len(wanted) == len(given) and all(
        w.startswith("{") or w.lower() == g.lower() for w, g in zip(wanted, given, strict=True)
    )


def allowed(path: str) -> dict[str, str]:
    """The methods the operations on `path` take, each with its operation's path template
    (of two for one method, the one with more literal segments)."""
    found: dict[str, str] = {}
    for method, template in OPERATIONS:
        if _matches(template, path) and _literals(template) > _literals(found.get(method, "")):
            found[method] = template
    return dict(sorted(found.items()))


def _literals(template: str) -> int:
    return -1 if not template else sum(not s.startswith("{") for s in _segments(template))


def allow_header(methods: dict[str, str]) -> str:
    extra = ["HEAD"] if "GET" in methods and _head_function(methods) else []
    return ", ".join([*methods, *extra, "OPTIONS"])


def _head_function(methods: dict[str, str]) -> Callable[..., func.HttpResponse] | None:
    """The GET function that answers HEAD: one that takes only the request (not one with a
    durable client binding)."""
    function = HANDLERS.get(("GET", methods.get("GET", "")))
    if function is None or inspect.iscoroutinefunction(function):
        return None
    return function if len(inspect.signature(function).parameters) == 1 else None


@bp.function_name(FUNCTION_NAME)
@bp.route(route="{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def fallback(req: func.HttpRequest) -> func.HttpResponse:
    path = urlsplit(req.url).path or "/"
    methods = allowed(path)
    method = req.method.upper()
    head = _head_function(methods) if method == "HEAD" else None
    if head is not None:
        got: func.HttpResponse = head(_as_get(req, methods["GET"], path))
        return func.HttpResponse(
            b"", status_code=got.status_code, headers=dict(got.headers), mimetype=got.mimetype
        )
    op = Operation(
        method,
        "/{*path}",
        "No operation",
        None,
        auth=Auth.PUBLIC,
        envelope=path.lower().startswith("/api/v2/"),
    )
    return handle(req, op, lambda ctx: _refuse(ctx, method, methods))


def _as_get(req: func.HttpRequest, template: str, path: str) -> func.HttpRequest:
    """`req` as the host would give it to the GET function of `template`: its route
    parameters taken from `path` (this function's own are `{*path}`)."""
    params = {
        wanted[1:-1]: unquote(given)
        for wanted, given in zip(_segments(template), _segments(path), strict=True)
        if wanted.startswith("{")
    }
    return func.HttpRequest(
        method=req.method,
        url=req.url,
        headers=dict(req.headers),
        params=dict(req.params),
        route_params=params,
        body=req.get_body() or b"",
    )


def _refuse(ctx: RequestContext[None], method: str, methods: dict[str, str]) -> Reply:
    if not methods:
        raise NotFound("No such endpoint; GET /openapi.json lists them")
    allow = allow_header(methods)
    if method == "OPTIONS":
        return Reply("", status=204, headers={"Allow": allow}, media_type="text/plain")
    raise ApiError(
        f"Method not allowed here; allowed: {allow}",
        error_code="METHOD_NOT_ALLOWED",
        status=405,
        headers={"Allow": allow},
    )
