"""Stopping the host: Ctrl-C ends it within 3 s, without a traceback, and leaves no process.

The sample app `shutdown` keeps processes computing for a minute, as a simulation does: a
forkserver process pool and a `subprocess` child from a queue function, a spawned
`multiprocessing.Process` from an HTTP function. A job cut off by a stop is not lost: its
message was not deleted and runs again on the next start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from funchost.testing import FuncHost, process_family

if TYPE_CHECKING:
    from conftest import AppRunner, RunningApp, Storage

STOP_BOUND_SECONDS = 3.0

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/stat"), reason="finds processes in /proc"
)


def count(records: list[dict[str, Any]], function: str) -> int:
    return sum(1 for r in records if r["function"] == function)


def start_long_work(app: RunningApp, storage: Storage, *, http: bool = True) -> set[int]:
    """A queue job (pool of two, one subprocess) and, if `http`, an HTTP request (one
    spawned process) computing for a minute; the pids of the processes they run."""
    storage.send(app.settings["WorkQueue"], "60")
    if http:

        def call() -> None:
            request = urllib.request.Request(f"{app.url}/api/spin?seconds=60", method="POST")
            with contextlib.suppress(OSError):  # cut off by the stop
                urllib.request.urlopen(request, timeout=30).read()

        threading.Thread(target=call, daemon=True).start()
    records = app.wait_for_records(
        lambda r: (
            count(r, "pool-worker") == 2
            and count(r, "work") == 1
            and count(r, "spin-child") == (1 if http else 0)
        ),
        timeout=60,
    )
    pids = {r["pid"] for r in records if r["function"] in ("pool-worker", "spin-child")}
    pids |= {r["sleeper"] for r in records if r["function"] == "work"}
    return pids


def wait_gone(pids: set[int], timeout: float = 1.0) -> set[int]:
    """What is left of `pids`' family after `timeout` seconds (sooner if nothing is)."""
    deadline = time.monotonic() + timeout
    while True:
        left = process_family(*pids)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def stopped_within(host: FuncHost, seconds: float) -> tuple[int, float]:
    """Wait for the host to exit: its exit status and how long that took (fails past it)."""
    started = time.monotonic()
    try:
        code = host.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"funchost still runs {seconds:g}s after the signal:\n{host.log_text()[-3000:]}"
        ) from None
    return code, time.monotonic() - started


def kill_family(pids: set[int]) -> None:
    for pid in process_family(*pids):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_with_long_work_in_flight_stops_in_3s_leaves_no_process_and_no_traceback(
    run_app: AppRunner, storage: Storage
) -> None:
    app = run_app.start("shutdown")
    assert app.host.pid is not None
    working = start_long_work(app, storage)
    family = process_family(app.host.pid)
    assert working <= family, (working, family)
    try:
        # when Ctrl-C reaches the terminal's foreground group: the host and what it started
        app.host.interrupt()
        code, took = stopped_within(app.host, STOP_BOUND_SECONDS)

        # then it is gone within 3 s, and so is every process it started, a second later
        left = wait_gone(family)
        assert not left, f"left behind: {left}"
        log = app.host.log_text()
        assert "Traceback" not in log, log
        assert code == 0, log
        assert "abandoned" in log
        print(f"stopped in {took:.2f}s")
    finally:
        kill_family(family)

    # and the cut-off job was not deleted: it runs again on the next start, after its lease
    app.host.start()
    app.wait_for_records(
        lambda r: any(x["function"] == "work" and x["dequeue_count"] == 2 for x in r), timeout=30
    )


def test_a_second_ctrl_c_cuts_the_grace_period_short(run_app: AppRunner, storage: Storage) -> None:
    app = run_app.start("shutdown", extra_args=["--grace-period", "30"])
    host = app.host
    assert host.pid is not None
    start_long_work(app, storage, http=False)
    family = process_family(host.pid)
    try:
        host.interrupt()
        host.wait_for_log("Stopping the host")
        time.sleep(0.5)
        assert host.running  # in its 30 s of grace
        host.interrupt()
        stopped_within(host, 1.5)
        assert not wait_gone(family)
        assert "Traceback" not in host.log_text()
    finally:
        kill_family(family)


def test_ctrl_c_while_the_app_is_imported_stops_without_a_traceback(run_app: AppRunner) -> None:
    host, app_dir, _ = run_app.host_for("shutdown", settings={"SHUTDOWN_IMPORT_SECONDS": "30"})
    records = app_dir / "records.jsonl"
    host.launch()
    try:
        deadline = time.monotonic() + 30
        while not (records.exists() and '"import"' in records.read_text(encoding="utf-8")):
            assert time.monotonic() < deadline, host.log_text()
            time.sleep(0.05)
        assert host.pid is not None
        family = process_family(host.pid)
        host.interrupt()
        code, _ = stopped_within(host, STOP_BOUND_SECONDS)
        assert "Traceback" not in host.log_text(), host.log_text()
        assert code != 0  # it never served
        assert not wait_gone(family)
    finally:
        host.stop(grace=0)


def test_sigterm_to_the_host_alone_ends_what_it_started_idle_or_busy(
    run_app: AppRunner, storage: Storage
) -> None:
    # given a host whose pool is idle after a short job, and one whose job is still running
    idle = run_app.start("shutdown")
    storage.send(idle.settings["WorkQueue"], "0.2")
    idle.wait_for_records(lambda r: count(r, "work-done") == 1, timeout=60)
    busy = run_app.start("shutdown")
    start_long_work(busy, storage, http=False)
    for app in (idle, busy):
        pid = app.host.pid
        assert pid is not None
        family = process_family(pid)
        assert len(family) > 3, family  # the pool, its forkserver, the resource tracker
        try:
            # when only the host gets SIGTERM (as `make run` sends it), not its group
            os.kill(pid, signal.SIGTERM)
            stopped_within(app.host, STOP_BOUND_SECONDS)
            assert not wait_gone(family), app.name
            assert "Traceback" not in app.host.log_text()
        finally:
            kill_family(family)
