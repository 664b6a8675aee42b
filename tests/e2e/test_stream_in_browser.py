"""The reference's WebSocket example, in a real headless Chromium, against `make run`'s stack.

The stack is `scripts/run.sh` itself (Azurite, the Web PubSub stand-in pubsubhost, funchost
serving this repository's `function_app.py`, which proxies `ws://HOST:PORT/api/v2/network/stream`
to the hub), run as test_run_script.py runs it: from a temporary folder that holds a copy of
the script and of the app's top-level files, and links to the repository's `shared/` and
`.venv`, so that what run.sh writes (`.azurite/`, `local.settings.json`, `.qcos/admin-key`)
stays there; on free ports (`FUNCHOST_PORT`, `PUBSUB_PORT`, `AZURITE_PORTS`). No admin key is
given: run.sh generates one into `.qcos/admin-key`, and the test reads it there, as a user does.

The page runs the reference's JavaScript ("WebSocket Streaming" in the v2 API reference) as
written there, but for the host (`wss://api.softquantus.com` -> `ws://127.0.0.1:<port>`) and the
key. What it prints (`console.log`) is what a user sees; it prints only `job_id` and `status`,
so the progress of a network job is read from the frames the page's socket received.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Page, WebSocket

from funchost.testing import find_azurite, free_port, process_family
from tests.circuits import BELL
from tests.e2e.gateway import new_key, submit

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
# The v2 reference, "WebSocket Streaming", as written there.
REFERENCE_JS = """\
const ws = new WebSocket('wss://api.softquantus.com/api/v2/network/stream');
ws.onopen = () => {
ws.send(JSON.stringify({
api_key: 'qcos_live_...',
subscribe: ['job_updates', 'backend_status']
}));
};
ws.onmessage = (event) => {
const update = JSON.parse(event.data);
console.log(`Job ${update.job_id}: ${update.status}`);
};
"""
FAN_OUT = ["qiskit_aer", "ionq_simulator", "braket_sv1"]  # local and emulated: quick here

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@dataclass
class MakeRun:
    """scripts/run.sh running from `root`, in a session of its own."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, substring: str) -> None:
        deadline = time.monotonic() + WAIT_S * 2  # three servers start on two busy cores
        while substring not in self.text():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, f"{substring!r} not seen:\n{self.text()}"
            time.sleep(0.1)

    def admin_key(self) -> str:
        return (self.root / ".qcos" / "admin-key").read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    root = tmp_path_factory.mktemp("make-run")
    (root / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "run.sh", root / "scripts" / "run.sh")
    for name in ("function_app.py", "host.json", "local.settings.json.example", "LICENSE"):
        shutil.copy2(ROOT / name, root / name)
    for name in (".venv", "shared"):
        (root / name).symlink_to(ROOT / name)
    ports = [free_port() for _ in range(5)]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AzureWebJobsStorage", "QCOS_ADMIN_API_KEY")
        and not k.startswith(("FUNCHOST_", "QCOS_WEBPUBSUB_"))
    }
    env |= {
        "AZURITE_BIN": find_azurite(),
        "FUNCHOST_PORT": str(ports[0]),
        "PUBSUB_PORT": str(ports[1]),
        "AZURITE_PORTS": " ".join(map(str, ports[2:])),
    }
    output = root / "run.out"
    with open(output, "ab") as out:
        process = subprocess.Popen(
            ["bash", str(root / "scripts" / "run.sh")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    running = MakeRun(root, ports[0], process, output)
    family: set[int] = set()
    try:
        running.wait_for_output("Host started")
        yield running
    finally:
        family = process_family(process.pid)
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in process_family(*family):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class StreamPage:
    """A page running the reference's script: what it printed, and what its socket got."""

    page: Page
    printed: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)

    def pump_until(self, done: Callable[[], bool], what: str) -> None:
        """Let the browser's events in (the sync API delivers them while it waits) until
        `done()`; fails after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while not done():
            assert time.monotonic() < deadline, f"{what}: {self.printed}\n{self.frames}"
            self.page.wait_for_timeout(100)

    def statuses(self, job_id: str) -> list[str]:
        """The statuses the script printed for `job_id`, in order."""
        prefix = f"Job {job_id}: "
        return [line[len(prefix) :] for line in self.printed if line.startswith(prefix)]

    def updates(self, job_id: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "job_update" and f["job_id"] == job_id]


@pytest.fixture
def user_key(make_run: MakeRun) -> str:
    return new_key(make_run.url, make_run.admin_key())


@pytest.fixture
def stream_page(browser: Browser, make_run: MakeRun, user_key: str) -> Iterator[StreamPage]:
    context = browser.new_context()
    watched = StreamPage(context.new_page())

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "log":
            watched.printed.append(message.text)

    def on_socket(socket: WebSocket) -> None:
        watched.sockets.append(socket.url)

        def on_frame(payload: str | bytes) -> None:
            text = payload.decode() if isinstance(payload, bytes) else payload
            watched.frames.append(json.loads(text))

        socket.on("framereceived", on_frame)

    watched.page.on("console", on_console)
    watched.page.on("websocket", on_socket)
    script = REFERENCE_JS.replace("wss://api.softquantus.com", f"ws://127.0.0.1:{make_run.port}")
    script = script.replace("qcos_live_...", user_key)
    assert script.count(f"ws://127.0.0.1:{make_run.port}/") == 1 and script.count(user_key) == 1
    # A page of the gateway's own origin: Chromium's Local Network Access checks refuse a
    # socket to 127.0.0.1 from about:blank (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
    watched.page.goto(f"{make_run.url}/health")
    watched.page.add_script_tag(content=script)
    acknowledged = {"type": "subscribed", "subscribe": ["job_updates", "backend_status"]}
    watched.pump_until(lambda: acknowledged in watched.frames, "the subscription is acknowledged")
    assert watched.sockets == [f"ws://127.0.0.1:{make_run.port}/api/v2/network/stream"]
    yield watched
    context.close()


def test_the_reference_script_prints_a_bell_job_going_queued_processing_completed(
    make_run: MakeRun, user_key: str, stream_page: StreamPage
) -> None:
    # given the reference's script subscribed in the browser
    # when a Bell job is submitted over HTTP
    job_id = submit(make_run.url, user_key, BELL)
    stream_page.pump_until(lambda: "completed" in stream_page.statuses(job_id), "job completed")
    stream_page.page.wait_for_timeout(500)  # anything printed after the end shows too

    # then the script printed its three statuses, in order
    assert stream_page.statuses(job_id) == ["queued", "processing", "completed"]
    assert [f"Job {job_id}: {s}" for s in ("queued", "processing", "completed")] == [
        line for line in stream_page.printed if job_id in line
    ]
    assert {u["job_type"] for u in stream_page.updates(job_id)} == {"job"}


def test_the_reference_script_follows_a_three_backend_fan_out_to_its_end_with_progress(
    make_run: MakeRun, user_key: str, stream_page: StreamPage
) -> None:
    # given the reference's script subscribed in the browser
    # when a network job runs a Bell circuit on three backends (`all`)
    body = {"qasm": BELL, "backends": FAN_OUT, "strategy": "all", "shots": 500}
    with ThreadPoolExecutor(1) as pool:
        posted: Future[requests.Response] = pool.submit(
            requests.post,
            f"{make_run.url}/api/v2/network/execute",
            json=body,
            headers={"X-API-Key": user_key},
            timeout=120,
        )
        stream_page.pump_until(posted.done, "the POST answers")  # it may wait for the end
        answer = posted.result()
    assert answer.status_code in (200, 202), answer.text
    job_id = answer.json()["data"]["job_id"]
    stream_page.pump_until(lambda: "completed" in stream_page.statuses(job_id), "job completed")
    stream_page.page.wait_for_timeout(500)

    # then the script printed the network job's statuses, up to `completed`
    printed = stream_page.statuses(job_id)
    assert printed[0] == "queued" and printed[-1] == "completed", printed
    assert set(printed[1:-1]) <= {"running"}, printed
    # and every update of the network job counts its three runs, finished ones growing to 3
    updates = stream_page.updates(job_id)
    assert [u["status"] for u in updates] == printed
    assert all(u["job_type"] == "network_job" and u["runs_planned"] == 3 for u in updates), updates
    finished = [u["runs_finished"] for u in updates if "runs_finished" in u]
    assert finished == sorted(finished) and finished[-1] == 3, updates
    assert updates[-1]["runs_finished"] == 3
    # and as each run ended, a `running` update named it: one per backend
    progress = [u for u in updates if "run" in u]
    assert all(u["status"] == "running" for u in progress), progress
    assert sorted(u["run"]["backend"] for u in progress) == sorted(FAN_OUT), progress
    assert {u["run"]["status"] for u in progress} == {"completed"}
    assert all(1 <= u["runs_finished"] <= 3 for u in progress), progress
    run_ids = [u["run"]["run_id"] for u in progress]
    assert len(set(run_ids)) == 3
    # and each run is a job of its own on the stream, tied to the network job, printed too
    for update in progress:
        run = update["run"]
        of_run = stream_page.updates(run["run_id"])
        assert of_run and {u["network_job_id"] for u in of_run} == {job_id}, of_run
        assert {u["backend"] for u in of_run} == {run["backend"]}
        assert stream_page.statuses(run["run_id"])[-1] == "completed"
