"""`shared.suppliers.processes`: heavy runs in processes of their own, each one stoppable, none
outliving the host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.suppliers.processes import (
    Processes,
    RunStopped,
    RunTimeLimitExceeded,
    SimulatorUnavailable,
    report_progress,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def spin(seconds: float) -> str:
    """Busy for `seconds` (a stand-in for a simulation holding its CPU)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "done"


def counted(steps: int) -> int:
    for step in range(1, steps + 1):
        report_progress(step)
    return steps


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by its parent) is gone for our purpose
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


@pytest.fixture
def pool() -> Iterator[Processes]:
    processes = Processes(2)
    yield processes
    processes.close()


def test_a_run_past_its_limit_is_killed_and_the_next_run_gets_a_new_process(
    pool: Processes,
) -> None:
    # given
    assert pool.run(spin, 0.0, what="warm-up") == "done"
    (first,) = pool.processes()
    # when
    with pytest.raises(RunTimeLimitExceeded) as caught:
        pool.run(spin, 60.0, what="The spinner", seconds=0.5)
    # then
    assert caught.value.error_code == "RUN_TIME_LIMIT_EXCEEDED"
    assert (
        caught.value.detail
        == "The spinner ran for more than 0.5 s, the limit of a run, and was stopped"
    )
    assert not alive(first)
    assert pool.run(spin, 0.0, what="again") == "done"
    assert first not in pool.processes()


def test_a_run_whose_caller_says_stop_is_killed(pool: Processes) -> None:
    # given a caller that says stop on its second look
    looks: list[float] = []

    def stopped() -> bool:
        looks.append(time.monotonic())
        return len(looks) >= 2

    # when
    with pytest.raises(RunStopped):
        pool.run(spin, 60.0, what="The spinner", stopped=stopped, check_every_s=0.2)
    # then
    assert len(looks) == 2
    assert pool.processes() == []


def test_a_short_run_is_never_asked_whether_to_stop(pool: Processes) -> None:
    # given
    looks: list[int] = []
    # when
    result = pool.run(spin, 0.05, what="short", stopped=lambda: bool(looks.append(1)))
    # then
    assert result == "done" and looks == []


def test_progress_reported_in_the_child_reaches_the_caller(pool: Processes) -> None:
    seen: list[int] = []
    assert pool.run(counted, 3, what="counter", progress=seen.append) == 3
    assert seen == [1, 2, 3]


def test_a_process_killed_under_a_run_answers_503_and_the_pool_goes_on(pool: Processes) -> None:
    # given a run going on in another thread's process
    import threading

    errors: list[BaseException] = []

    def work() -> None:
        try:
            pool.run(spin, 60.0, what="The spinner")
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=work)
    runner.start()
    deadline = time.monotonic() + 30
    while not pool.processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = pool.processes()
    # when the OOM killer takes it
    os.kill(pid, signal.SIGKILL)
    runner.join(timeout=10)
    # then
    assert len(errors) == 1 and isinstance(errors[0], SimulatorUnavailable)
    assert pool.run(spin, 0.0, what="again") == "done"


def test_a_killed_host_leaves_no_simulator_process_behind(tmp_path: Path) -> None:
    # given a host process with a run going on in a simulator process
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(
        f"""
        import sys, threading, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from shared.suppliers.processes import Processes
        from test_simulator_processes import spin
        pool = Processes(1)
        threading.Thread(target=pool.run, args=(spin, 120.0), kwargs={{"what": "x"}}).start()
        while not pool.processes():
            time.sleep(0.05)
        open({str(pid_file)!r}, "w").write(str(pool.processes()[0]))
        time.sleep(120)
        """
    )
    host = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert alive(child)
        # when the host is killed outright (no exit handlers run)
        host.kill()
        host.wait(timeout=10)
        # then its simulator process goes with it
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        host.kill()
