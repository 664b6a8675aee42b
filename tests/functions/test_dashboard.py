"""`GET /dashboard` and its assets, calling the registered functions directly."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import azure.functions as func
import pytest

from shared.api import dashboard
from shared.config import get_settings

Configure = Callable[[str | None], None]


def get(
    fn: Callable[[func.HttpRequest], func.HttpResponse], path: str, **route_params: str
) -> func.HttpResponse:
    """GET `path` from `fn` with no key, as the worker would call it."""
    req = func.HttpRequest(
        method="GET",
        url=f"http://127.0.0.1:7071{path}",
        headers={},
        route_params=route_params,
        body=b"",
    )
    return fn(req)


def policy(response: func.HttpResponse) -> dict[str, str]:
    """The Content-Security-Policy's directives, by name."""
    text = response.headers["Content-Security-Policy"]
    return {
        name: value.strip()
        for name, _, value in (d.strip().partition(" ") for d in text.split(";") if d.strip())
    }


@pytest.fixture
def stream_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Configure]:
    """Set the Web PubSub connection string the app reads (None: unset)."""

    def configure(connection_string: str | None) -> None:
        if connection_string is None:
            monkeypatch.delenv("QCOS_WEBPUBSUB_CONNECTION_STRING", raising=False)
        else:
            monkeypatch.setenv("QCOS_WEBPUBSUB_CONNECTION_STRING", connection_string)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def test_the_page_is_public_html_under_a_strict_policy(stream_at: Configure) -> None:
    # given a deployment whose stream is the local Web PubSub stand-in
    stream_at("Endpoint=http://127.0.0.1;Port=7080;AccessKey=abc=;Version=1.0;")
    # when the page is asked for with no key
    page = get(dashboard.dashboard, "/dashboard")
    # then it is HTML, with no inline script, loading only its own files
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_body().decode("utf-8")
    assert "<html" in html and "<script>" not in html and " style=" not in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(s for s in sources if s != "data:,") == [
        "/dashboard/assets/dashboard.css",
        "/dashboard/assets/dashboard.js",
    ]
    # and its policy lets it reach this app and the stream's WebSocket origin only
    directives = policy(page)
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self' ws://127.0.0.1:7080"
    assert directives["frame-ancestors"] == "'none'"
    assert "*" not in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("connection_string", "connect_src"),
    [
        (
            "Endpoint=https://qcos-prod.webpubsub.azure.com;AccessKey=k=;Version=1.0;",
            "'self' wss://qcos-prod.webpubsub.azure.com",
        ),
        (
            "endpoint=HTTPS://Qcos.WebPubSub.Azure.com:8443/;accesskey=k;version=1.0",
            "'self' wss://qcos.webpubsub.azure.com:8443",
        ),
        (
            "Endpoint=http://127.0.0.1;Port=7080;AccessKey=k;Version=1.0;",
            "'self' ws://127.0.0.1:7080",
        ),
        (None, "'self'"),
    ],
)
def test_the_policy_names_the_websocket_origin_of_the_configured_web_pubsub(
    stream_at: Configure, connection_string: str | None, connect_src: str
) -> None:
    stream_at(connection_string)

    page = get(dashboard.dashboard, "/dashboard")

    assert page.status_code == 200
    assert policy(page)["connect-src"] == connect_src


def test_the_assets_answer_with_their_media_types() -> None:
    for name, media_type in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = get(dashboard.dashboard_asset, f"/dashboard/assets/{name}", name=name)
        assert asset.status_code == 200, name
        assert asset.mimetype == media_type, name
        assert len(asset.get_body()) > 1000, name
        assert asset.headers["Cache-Control"].startswith("public")
    script = get(dashboard.dashboard_asset, "/dashboard/assets/dashboard.js", name="dashboard.js")
    text = script.get_body().decode("utf-8")
    # what the page reads, all on this app, with the key from the tab's session storage
    for path in ("/api/v1/jobs", "/api/v2/network/stream/negotiate", "/user/usage"):
        assert path in text, path
    assert "sessionStorage" in text and "localStorage" not in text
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)  # nothing from elsewhere


def test_a_file_that_is_not_a_dashboard_asset_is_404() -> None:
    for name in ("dashboard.html", "..%2Fdashboard.py", "dashboard.js.map", ""):
        answer = get(dashboard.dashboard_asset, f"/dashboard/assets/{name}", name=name)
        assert answer.status_code == 404, name
        assert answer.mimetype == "application/json"
