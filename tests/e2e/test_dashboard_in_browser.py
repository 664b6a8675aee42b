"""`/dashboard` in a real headless Chromium, against the app under funchost with the Web PubSub
stand-in, on Azurite: jobs go to `completed` on the page without a reload, a fan-out's progress
reaches 3 of 3, and after restarts of the host and of the stand-in the page shows the terminal
statuses it could not hear of.

The page may reach only the app and the stand-in's client endpoint (any other request fails the
test), and may log no console error outside the outages the tests cause. The screenshot is kept
in `test-artifacts/dashboard.png`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route

from funchost.testing import Azurite, FuncHost, free_port
from pubsubhost.testing import PubSubHost
from tests.circuits import BELL
from tests.e2e.gateway import new_key, submit

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ADMIN_KEY = "qcos_admin_" + "d" * 40
FAN_OUT = ["qiskit_aer", "ionq_simulator", "ibm_brisbane"]
TERMINAL = ("completed", "failed", "cancelled")
WAIT_MS = 60_000
# What Chromium logs when a request or a WebSocket finds nothing listening (an outage)
OUTAGE_ERRORS = re.compile(r"WebSocket connection to|Failed to load resource|ERR_CONNECTION")


# Records the progress text of every job row the page draws (each update redraws the rows).
RECORD_PROGRESS = """() => {
  window.qcosProgress = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        const text = node.nodeType === 1 && node.querySelector(".progress-text");
        if (text) window.qcosProgress.push([node.dataset.jobId, text.textContent]);
      }
    }
  }).observe(document.querySelector("#jobs tbody"), { childList: true });
}"""


@dataclass
class Stack:
    host: FuncHost
    pubsub: PubSubHost
    upstream: str

    def restart_pubsub(self, before_start: Any = None) -> None:
        """Stop the stand-in, run `before_start()`, then start a new one on the same port
        with the same access key (so the app's connection string still holds)."""
        old = self.pubsub
        old.stop()
        if before_start is not None:
            before_start()
        self.pubsub = PubSubHost(
            upstreams={"qcos": self.upstream}, access_key=old.access_key, port=old.port
        ).start()


@pytest.fixture(scope="module")
def stack(azurite: Azurite) -> Iterator[Stack]:
    port = free_port()
    upstream = f"http://127.0.0.1:{port}/api/webpubsub/events"
    pubsub = PubSubHost(upstreams={"qcos": upstream}).start()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "QCOS_ADMIN_API_KEY": ADMIN_KEY,
        "QCOS_WEBPUBSUB_CONNECTION_STRING": pubsub.connection_string,
        "QCOS_SYNC_TIMEOUT_SECONDS": "1",  # a fan-out answers 202 and runs on
    }
    running = Stack(FuncHost(ROOT, env=env, port=port), pubsub, upstream)
    try:
        running.host.start()
        yield running
    finally:
        running.host.close()
        running.pubsub.stop()


@dataclass
class Watched:
    """A page, with what it tried to reach elsewhere and the console errors it logged."""

    page: Page
    elsewhere: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (phase, text)
    page_errors: list[str] = field(default_factory=list)
    phase: str = "steady"

    def errors_outside_outages(self) -> list[str]:
        return [
            text
            for phase, text in self.console_errors
            if phase == "steady" or not OUTAGE_ERRORS.search(text)
        ]


@pytest.fixture
def watched(browser: Browser, stack: Stack) -> Iterator[Watched]:
    """A page that may reach only the app and the stand-in's client endpoint."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    seen = Watched(page)
    app = stack.host.url + "/"
    stream = f"ws://127.0.0.1:{stack.pubsub.port}/client/hubs/qcos"

    def only_ours(route: Route, request: Request) -> None:
        if request.url.startswith(app):
            route.continue_()
        else:
            seen.elsewhere.append(request.url)
            route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.console_errors.append((seen.phase, message.text))

    page.route("**/*", only_ours)
    page.on("console", console)
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    page.on(
        "websocket",
        lambda ws: None if ws.url.startswith(stream) else seen.elsewhere.append(ws.url),
    )
    yield seen
    context.close()
    assert seen.elsewhere == [], f"the page reached outside the app: {seen.elsewhere}"
    assert seen.page_errors == [], seen.page_errors


def submit_fan_out(host: FuncHost, key: str) -> str:
    body = {"qasm": BELL, "backends": FAN_OUT, "strategy": "all", "shots": 200}
    answer = requests.post(
        f"{host.url}/api/v2/network/execute", json=body, headers={"X-API-Key": key}, timeout=60
    )
    assert answer.status_code in (200, 202), answer.text
    return str(answer.json()["data"]["job_id"])


def wait_done_over_http(host: FuncHost, key: str, job_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(
            f"{host.url}/api/v1/status/{job_id}", headers={"X-API-Key": key}, timeout=30
        )
        status = str(answer.json().get("status"))
        if status in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def open_dashboard(page: Page, host: FuncHost, key: str) -> None:
    """Open the page, type the key, and wait until it is live."""
    page.goto(f"{host.url}/dashboard")
    page.fill("#key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT_MS)


def job_row(job_id: str, status: str | None = None) -> str:
    row = f'#jobs tr[data-job-id="{job_id}"]'
    return f'{row}[data-status="{status}"]' if status else row


def test_the_dashboard_shows_backends_and_jobs_going_to_completed_without_a_reload(
    watched: Watched, stack: Stack
) -> None:
    page, host = watched.page, stack.host
    key = new_key(host.url, ADMIN_KEY)
    catalog = requests.get(
        f"{host.url}/api/v2/network/backends", headers={"X-API-Key": key}, timeout=30
    ).json()["data"]["backends"]

    # given the dashboard, opened with the key typed in
    open_dashboard(page, host, key)
    page.evaluate("window.qcosTestMarker = 'this document'")  # gone if the page reloads
    # then every backend is listed with its status and queue depth
    aer = page.locator('#backends tr[data-backend-id="qiskit_aer"]')
    aer.wait_for(timeout=WAIT_MS)
    assert page.locator("#backends tbody tr").count() == len(catalog)
    assert aer.locator(".backend-status").inner_text() == "online"
    assert re.fullmatch(r"\d+", aer.locator(".queue-depth").inner_text())
    assert page.evaluate("sessionStorage.length") == 1
    assert page.evaluate("localStorage.length") == 0

    # when a Bell job is submitted over HTTP
    bell = submit(host.url, key, BELL)
    # then its row appears and goes to completed on the open page
    page.wait_for_selector(job_row(bell, "completed"), timeout=WAIT_MS)
    assert page.locator(job_row(bell)).locator(".job-backend").inner_text() == "qiskit_aer"

    # when a fan-out to three backends is submitted
    page.evaluate(RECORD_PROGRESS)
    fan_out = submit_fan_out(host, key)
    # then its progress reaches 3 of 3 runs, a run at a time, and it completes
    row = page.locator(job_row(fan_out))
    page.wait_for_selector(job_row(fan_out, "completed"), timeout=WAIT_MS)
    progress = row.locator(".progress-text")
    progress.filter(has_text="3 of 3 runs").wait_for(timeout=WAIT_MS)
    shown = [
        int(text.split()[0])
        for job_id, text in page.evaluate("window.qcosProgress")
        if job_id == fan_out and re.fullmatch(r"\d of 3 runs", text)
    ]
    assert shown == sorted(shown) and shown[-1] == 3, shown
    assert {1, 2} & set(shown), f"no progress before the end: {shown}"
    assert set(row.locator(".job-backend").inner_text().split(", ")) == set(FAN_OUT)
    # and today's spend is drawn per backend, the fan-out's included
    for backend in FAN_OUT:
        chart = page.locator("#spend-chart text", has_text=re.compile(f"^{backend}$"))
        chart.wait_for(timeout=WAIT_MS)
    assert "Jobs today" in page.locator("#spend-total").inner_text()

    assert page.evaluate("window.qcosTestMarker") == "this document"  # never reloaded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert watched.console_errors == []


def test_after_restarts_the_dashboard_shows_the_terminal_statuses_it_missed(
    watched: Watched, stack: Stack
) -> None:
    page, host = watched.page, stack.host
    key = new_key(host.url, ADMIN_KEY)
    open_dashboard(page, host, key)
    page.evaluate("window.qcosTestMarker = 'this document'")

    # given the host restarted while the page is subscribed, a job submitted just before
    watched.phase = "host restart"
    before = submit(host.url, key, BELL)
    host.restart()
    # when another is submitted after the restart
    after = submit(host.url, key, BELL)
    # then the page shows both completed
    page.wait_for_selector(job_row(before, "completed"), timeout=WAIT_MS)
    page.wait_for_selector(job_row(after, "completed"), timeout=WAIT_MS)

    # given the stand-in restarted (the page's socket drops) and a job that ends meanwhile
    watched.phase = "stream restart"
    missed: list[str] = []

    def while_the_stream_is_down() -> None:
        page.wait_for_selector('#connection[data-state="reconnecting"]', timeout=WAIT_MS)
        missed.append(submit(host.url, key, BELL))
        assert wait_done_over_http(host, key, missed[0]) == "completed"
        # no update could reach the page: it has not heard of the job
        assert page.locator(job_row(missed[0])).count() == 0

    stack.restart_pubsub(before_start=while_the_stream_is_down)
    # then the page reconnects and re-reads: the job it missed shows completed
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT_MS)
    page.wait_for_selector(job_row(missed[0], "completed"), timeout=WAIT_MS)
    watched.phase = "steady"
    # and live updates flow again on the new connection
    again = submit(host.url, key, BELL)
    page.wait_for_selector(job_row(again, "completed"), timeout=WAIT_MS)

    assert page.evaluate("window.qcosTestMarker") == "this document"
    assert watched.errors_outside_outages() == []


def test_a_refused_key_shows_the_error_and_forget_key_clears_the_tab(
    watched: Watched, stack: Stack
) -> None:
    page, host = watched.page, stack.host
    wrong = "qcos_live_" + "x" * 40
    refusal = requests.get(f"{host.url}/user/me", headers={"X-API-Key": wrong}, timeout=30)
    assert refusal.status_code == 401

    # when a wrong key is typed
    page.goto(f"{host.url}/dashboard")
    page.fill("#key", wrong)
    page.click("#key-form button[type=submit]")
    # then the standard error body's message is shown, and the key is not kept
    error = page.locator("#key-error")
    error.filter(has_text=refusal.json()["detail"]).wait_for(timeout=WAIT_MS)
    assert page.locator("#board").is_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    refused_loads = [text for _, text in watched.console_errors]
    assert all("401" in text for text in refused_loads), refused_loads
    watched.console_errors.clear()

    # given a good key, kept across a reload of the tab
    open_dashboard(page, host, new_key(host.url, ADMIN_KEY))
    page.reload()
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT_MS)
    # when the key is forgotten
    page.click("#forget")
    # then the tab holds no key and asks for one
    page.wait_for_selector("#key-form", state="visible", timeout=WAIT_MS)
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("#board").is_hidden()
    assert page.locator("#connection").get_attribute("data-state") == "signed-out"
    assert watched.console_errors == []
