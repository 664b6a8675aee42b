"""`GET /dashboard`: a live page of the network's backends, the caller's recent jobs and
today's spend.

The page is public; the caller types a key, which the tab keeps in `sessionStorage` and sends
as `X-API-Key` to the API's own operations (`/api/v2/network/backends` and `/status`,
`/api/v1/jobs`, `/user/usage`, `/api/v2/network/stream/negotiate`). Live updates come over a
plain WebSocket to Web PubSub (the negotiated URL); after each (re)connect the page re-reads
the jobs and backends, so nothing that changed while it was away stays stale.

Its HTML, script and style are files of ours beside this module (`static/`), served by the app
like `/docs`'s assets: no CDN, no inline script, and a Content-Security-Policy whose
`connect-src` names this app and the Web PubSub origin the negotiated URLs point at.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import azure.functions as func

from shared.config import get_settings
from shared.errors import NotFound
from shared.http import Auth, Operation, Reply, RequestContext, handle

bp = func.Blueprint()

_STATIC = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/dashboard/assets"
# The files the page loads: name under /dashboard/assets -> media type
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_PAGE_FILE = "dashboard.html"
# Short: the files change with a deployment and carry no version in their names.
_ASSET_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}

PAGE = Operation(
    "GET",
    "/dashboard",
    "A live dashboard of backends, your jobs and today's spend",
    None,
    auth=Auth.PUBLIC,
    tag="meta",
    media_types=("text/html",),
    description="The network's backends with status and queue depth, your recent jobs with "
    "their live status and fan-out progress, and today's spend per backend. Type your key "
    "into the page: the tab keeps it in session storage and sends it as `X-API-Key`. Live "
    "updates arrive over the stream (`/api/v2/network/stream/negotiate`); its files come from "
    "this app, so it works offline.",
)
ASSET = Operation(
    "GET",
    f"{ASSETS_PATH}/{{name}}",
    "The dashboard's script or style",
    None,
    auth=Auth.PUBLIC,
    tag="meta",
    errors=(404,),
    media_types=tuple(dict.fromkeys(ASSETS.values())),
    description=f"{', '.join(f'`{name}`' for name in ASSETS)}. Anything else is 404.",
)


@PAGE.route(bp)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, PAGE, lambda ctx: _page())


@ASSET.route(bp)
def dashboard_asset(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, ASSET, _asset)


def _page() -> Reply:
    headers = {
        "Content-Security-Policy": page_policy(),
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return Reply(_file(_PAGE_FILE), media_type="text/html", headers=headers)


def _asset(ctx: RequestContext[None]) -> Reply:
    name = ctx.params.get("name", "")
    if name not in ASSETS:
        raise NotFound(f"No dashboard asset {name[:100]!r}")
    return Reply(_file(name), media_type=ASSETS[name], headers=dict(_ASSET_HEADERS))


def page_policy() -> str:
    """The page's Content-Security-Policy: everything from this app only, and WebSockets to
    the configured Web PubSub too."""
    stream = get_settings().stream.client_origin
    connect = "'self'" + (f" {stream}" if stream else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


@lru_cache(maxsize=len(ASSETS) + 1)
def _file(name: str) -> str:
    """The file's text (read once per process)."""
    return (_STATIC / name).read_text(encoding="utf-8")
