"""`/docs` and `/redoc` in a real headless Chromium, against the app under funchost.

The browser is conftest.py's headless Chromium. The page may reach only the app: any request
elsewhere fails the test, so the pages are proven to work offline. The screenshots are kept in
`test-artifacts/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, Request, Route

from funchost.testing import Azurite, FuncHost

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def host(azurite: Azurite) -> Iterator[FuncHost]:
    with FuncHost(ROOT, env={"AzureWebJobsStorage": azurite.connection_string}) as running:
        yield running


@pytest.fixture
def page(browser: Browser, host: FuncHost) -> Iterator[Page]:
    """A page that may load only from the app: anything else is refused and remembered."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    elsewhere: list[str] = []

    def only_the_app(route: Route, request: Request) -> None:
        if request.url.startswith(host.url + "/"):
            route.continue_()
        else:
            elsewhere.append(request.url)
            route.abort()

    opened.route("**/*", only_the_app)
    yield opened
    context.close()
    assert elsewhere == [], f"the page reached outside the app: {elsewhere}"


def test_swagger_ui_lists_every_operation_and_try_it_out_calls_health(
    page: Page, host: FuncHost
) -> None:
    spec = requests.get(f"{host.url}/openapi.json", timeout=30).json()
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}

    page.goto(f"{host.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    listed = {
        (
            block.locator(".opblock-summary-method").inner_text().strip().upper(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.locator(".opblock").all()
    }
    assert listed == documented

    health = page.locator("#operations-health-get_health")
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    status = health.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip() == "200"
    assert '"ok"' in health.locator(".live-responses-table .microlight").first.inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    health.screenshot(path=str(ARTIFACTS / "docs-swagger-ui-try-health.png"))


def test_redoc_renders_the_operations(page: Page, host: FuncHost) -> None:
    page.goto(f"{host.url}/redoc")
    page.locator("h2", has_text="Queue a circuit").first.wait_for(timeout=30_000)
    assert page.locator("h1").first.inner_text().startswith("QCOS gateway")
    spec = requests.get(f"{host.url}/openapi.json", timeout=30).json()
    summaries = {op["summary"] for ops in spec["paths"].values() for op in ops.values()}
    rendered = set(page.locator("h2").all_inner_texts())
    assert summaries <= rendered, summaries - rendered

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-redoc.png"), full_page=False)
