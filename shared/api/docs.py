"""`GET /docs` (Swagger UI) and `GET /redoc` (ReDoc) render `/openapi.json` in a browser.

Their scripts and styles are served by the app itself, from the installed
`drf-spectacular-sidecar` package (Swagger UI 5, ReDoc 2), never from a CDN: the pages work
offline and inside private networks. The package is located without being imported (its
`__init__` imports Django, which the app never needs).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import azure.functions as func

from shared.errors import NotFound
from shared.http import Auth, Operation, Reply, RequestContext, handle

bp = func.Blueprint()

_PACKAGE = "drf_spectacular_sidecar"
ASSETS_PATH = "/docs/assets"
# The files the pages load: name under /docs/assets -> (path in the package, media type)
ASSETS = {
    "swagger-ui.css": ("swagger-ui-dist/swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": ("swagger-ui-dist/swagger-ui-bundle.js", "text/javascript"),
    "swagger-init.js": ("", "text/javascript"),  # ours, below
    "redoc.standalone.js": ("redoc/bundles/redoc.standalone.js", "text/javascript"),
}
_CACHE = {"Cache-Control": "public, max-age=86400"}
# The pages may load only from this app. ReDoc's sidebar shows a logo from the vendor's CDN; the
# policy blocks it in the browser (the image hides itself) so nothing leaves a private network.
# Both UIs style their elements inline, and ReDoc's search runs in a blob: worker.
_PAGE_POLICY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'",
}

# A script file rather than an inline one, so a Content-Security-Policy of `script-src 'self'`
# in front of the app does not break the page.
_SWAGGER_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
"""

_SWAGGER_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>QCOS gateway API</title>
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{ASSETS_PATH}/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>QCOS gateway API</title>
  <style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
  <redoc spec-url="/openapi.json"></redoc>
  <script src="{ASSETS_PATH}/redoc.standalone.js"></script>
</body>
</html>
"""

DOCS = Operation(
    "GET",
    "/docs",
    "The API in Swagger UI",
    None,
    auth=Auth.PUBLIC,
    tag="meta",
    media_types=("text/html",),
    description="Every operation of `/openapi.json`, with a form to try each one (Authorize with "
    "your key first). Its assets come from this app, so it works offline.",
)
REDOC = Operation(
    "GET",
    "/redoc",
    "The API in ReDoc",
    None,
    auth=Auth.PUBLIC,
    tag="meta",
    media_types=("text/html",),
    description="`/openapi.json` as a three-panel reference page, served with its assets by "
    "this app.",
)
ASSET = Operation(
    "GET",
    f"{ASSETS_PATH}/{{name}}",
    "A script or style of the docs pages",
    None,
    auth=Auth.PUBLIC,
    tag="meta",
    errors=(404,),
    media_types=("text/javascript", "text/css"),
    description="Swagger UI's and ReDoc's files, from the installed `drf-spectacular-sidecar` "
    f"package: {', '.join(f'`{name}`' for name in ASSETS)}. Anything else is 404.",
)


@DOCS.route(bp)
def swagger_ui(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, DOCS, lambda ctx: _page(_SWAGGER_PAGE))


@REDOC.route(bp)
def redoc(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, REDOC, lambda ctx: _page(_REDOC_PAGE))


@ASSET.route(bp)
def docs_asset(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, ASSET, _asset)


def _page(html: str) -> Reply:
    return Reply(html, media_type="text/html", headers=dict(_PAGE_POLICY))


def _asset(ctx: RequestContext[None]) -> Reply:
    name = ctx.params.get("name", "")
    if name not in ASSETS:
        raise NotFound(f"No docs asset {name!r}")
    return Reply(asset_text(name), media_type=ASSETS[name][1], headers=dict(_CACHE))


@lru_cache(maxsize=len(ASSETS))
def asset_text(name: str) -> str:
    """The asset's text (read once per process)."""
    relative = ASSETS[name][0]
    if not relative:
        return _SWAGGER_INIT
    return (_static_root() / relative).read_text(encoding="utf-8")


def _static_root() -> Path:
    spec = importlib.util.find_spec(_PACKAGE)  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{_PACKAGE} is not installed (it is in requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / _PACKAGE
