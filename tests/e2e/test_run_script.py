"""`make run` (scripts/run.sh): Ctrl-C stops Azurite, funchost and everything funchost started
within 3 s, prints no traceback, and a job cut off by the stop runs again on the next start.

run.sh runs from a copy of the repository's layout in a temporary folder (its `.venv` a link
to ours), serving funchost's `shutdown` sample app, whose functions keep processes computing
for a minute as a long simulation does, on free ports; its Azurite keeps its data there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from funchost.testing import AZURITE_ACCOUNT, AZURITE_KEY, find_azurite, free_port, process_family

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tools" / "funchost" / "tests" / "apps" / "shutdown"
STOP_BOUND_SECONDS = 3.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


class RunScript:
    """scripts/run.sh in a folder of its own, started in a session of its own (as a terminal
    starts a command in a process group of its own)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        ports = [free_port() for _ in range(4)]
        self.port = ports[0]
        self.storage_ports = ports[1:]
        self.records = root / "records.jsonl"
        self.output = root / "run.out"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "AZURITE_BIN": find_azurite(),
            "FUNCHOST_PORT": str(self.port),
            "AZURITE_PORTS": " ".join(map(str, self.storage_ports)),
            "QCOS_ADMIN_API_KEY": "qcos_admin_" + "r" * 40,
            "FUNCHOST_TEST_RECORDS": str(self.records),
            "FUNCHOST_QUEUE_LEASE_SECONDS": "4",
            "WorkQueue": "work",
        }
        self.env.pop("AzureWebJobsStorage", None)

    @property
    def connection_string(self) -> str:
        blob, queue, table = self.storage_ports
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={base}:{blob}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint={base}:{queue}/{AZURITE_ACCOUNT};"
            f"TableEndpoint={base}:{table}/{AZURITE_ACCOUNT};"
        )

    def start(self, **env: str) -> None:
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                ["bash", str(self.root / "scripts" / "run.sh")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, **env},
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, substring: str, timeout: float = 60.0, start: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while substring not in self.text()[start:]:
            assert self.process is not None and self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, f"{substring!r} not seen:\n{self.text()}"
            time.sleep(0.1)

    def read_records(self) -> list[dict[str, Any]]:
        if not self.records.exists():
            return []
        lines = self.records.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait_for_records(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not predicate(found := self.read_records()):
            assert time.monotonic() < deadline, f"records: {found}\n{self.text()}"
            time.sleep(0.1)
        return found

    def ctrl_c(self) -> float:
        """SIGINT to the script's process group, as the terminal sends it; how long the
        script took to exit (fails past STOP_BOUND_SECONDS)."""
        assert self.process is not None
        started = time.monotonic()
        os.killpg(self.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"run.sh still runs {STOP_BOUND_SECONDS:g}s after Ctrl-C:\n{self.text()}"
            ) from None
        return time.monotonic() - started


@pytest.fixture
def run_script(tmp_path: Path) -> Iterator[RunScript]:
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "run.sh", root / "scripts" / "run.sh")
    (root / ".venv").symlink_to(ROOT / ".venv")
    for name in ("function_app.py", "host.json"):
        shutil.copy2(APP / name, root / name)
    (root / "local.settings.json.example").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"AzureWebJobsStorage": "unused"}}),
        encoding="utf-8",
    )
    script = RunScript(root)
    seen: set[int] = set()
    yield script
    if script.process is not None:
        seen = process_family(script.pid)
        with contextlib.suppress(OSError):
            os.killpg(script.pid, signal.SIGKILL)
        script.process.wait()
    for pid in process_family(*seen):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def send_work(script: RunScript, seconds: float) -> None:
    """Put a job for the `work` queue function on the queue (created if missing)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    with QueueClient.from_connection_string(
        script.connection_string, "work", message_encode_policy=TextBase64EncodePolicy()
    ) as queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(str(seconds))


def count(records: list[dict[str, Any]], function: str) -> int:
    return sum(1 for r in records if r["function"] == function)


def gone_within(family: set[int], seconds: float = 1.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while (left := process_family(*family)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_ctrl_c_stops_everything_in_3s_without_a_traceback_and_the_job_runs_again(
    run_script: RunScript,
) -> None:
    run_script.start()
    run_script.wait_for_output("Host started")
    # given a queue job (two pool processes, a subprocess) and an HTTP request (a spawned
    # process) computing for a minute
    send_work(run_script, 60)

    def call() -> None:
        url = f"http://127.0.0.1:{run_script.port}/api/spin?seconds=60"
        with contextlib.suppress(OSError):
            urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30)

    threading.Thread(target=call, daemon=True).start()
    records = run_script.wait_for_records(
        lambda r: (
            count(r, "pool-worker") == 2 and count(r, "work") == 1 and count(r, "spin-child") == 1
        )
    )
    family = process_family(run_script.pid)
    computing = {r["pid"] for r in records if r["function"] in ("pool-worker", "spin-child")}
    assert computing <= family

    # when Ctrl-C is pressed
    took = run_script.ctrl_c()

    # then everything is gone within 3 s, and a second later nothing of it runs
    assert not gone_within(family), run_script.text()
    output = run_script.text()
    assert "Traceback" not in output, output
    print(f"run.sh stopped in {took:.2f}s")

    # and the job cut off runs again on the next start (Azurite kept the message)
    mark = len(run_script.text())
    run_script.start()
    run_script.wait_for_output("Host started", start=mark)
    run_script.wait_for_records(
        lambda r: any(x["function"] == "work" and x["dequeue_count"] == 2 for x in r)
    )
    family = process_family(run_script.pid)
    took = run_script.ctrl_c()
    assert not gone_within(family), run_script.text()
    assert "Traceback" not in run_script.text()
    print(f"run.sh stopped again in {took:.2f}s")


def test_ctrl_c_while_the_app_starts_stops_everything_without_a_traceback(
    run_script: RunScript,
) -> None:
    run_script.start(SHUTDOWN_IMPORT_SECONDS="30")
    run_script.wait_for_records(lambda r: count(r, "import") == 1)
    family = process_family(run_script.pid)

    run_script.ctrl_c()

    assert not gone_within(family), run_script.text()
    assert "Traceback" not in run_script.text(), run_script.text()


def test_a_second_ctrl_c_does_not_leave_anything_behind(run_script: RunScript) -> None:
    run_script.start()
    run_script.wait_for_output("Host started")
    send_work(run_script, 60)
    run_script.wait_for_records(lambda r: count(r, "pool-worker") == 2)
    family = process_family(run_script.pid)
    assert run_script.process is not None
    started = time.monotonic()
    os.killpg(run_script.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(run_script.pid, signal.SIGINT)
    run_script.process.wait(timeout=STOP_BOUND_SECONDS)
    assert time.monotonic() - started < 1.5, run_script.text()  # the grace period was cut
    assert not gone_within(family), run_script.text()
    assert "Traceback" not in run_script.text(), run_script.text()
