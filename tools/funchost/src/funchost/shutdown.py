"""Leaving: a bounded stop, and no child process left behind.

A function may start processes (a simulator's worker pool, a tool run with `subprocess`) and
still be running when the host stops. The host owns their lifetime: on the way out it ends
every process it started, directly or not, whatever the app does about it. Nothing here knows
the app; it finds the processes from the outside:

- `multiprocessing.active_children()` and the forkserver, when the app uses multiprocessing;
- on Linux, every descendant in `/proc` (the forkserver's workers are its children, not ours),
  and the members of our process group that were orphaned (re-parented away from us), when we
  lead that group.

Functions run in threads that block SIGINT (`block_interrupts`), and a blocked signal stays
blocked across fork and exec: a process a function starts does not get the terminal's Ctrl-C
(which goes to the whole foreground process group) and does not print a KeyboardInterrupt
traceback; the host ends it instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import NoReturn

log = logging.getLogger("funchost")

# How long children get to exit on SIGTERM before SIGKILL.
CHILD_TERM_SECONDS = 0.3


def block_interrupts() -> None:
    """Block SIGINT in the calling thread (and so in the processes it starts).

    Signals sent to the process are handled by the main thread, which does not block them.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, from the main thread.

    The first process a function starts with multiprocessing (spawn or forkserver) starts the
    tracker, and starting it *unblocks* SIGINT in the calling thread (bpo-33613), so the
    processes that thread starts next would get the terminal's Ctrl-C after all. Started
    here, it is never started from a function's thread. It is one idle process, which ends
    when the host does.

    Its stderr is /dev/null: after a stop that cut off processes it reports (as warnings) the
    semaphores they held, which it then unlinks; that is expected, not the app's fault.
    """
    if os.name != "posix":
        return
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    except Exception as exc:  # the app may still run without it
        log.debug("cannot start multiprocessing's resource tracker: %r", exc)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, session) of every running process (zombies left
    out), from /proc; {} where there is none."""
    table: dict[int, tuple[int, int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 4 and fields[0] != b"Z":
            table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rfind(b")") + 2 :][:1] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_processes() -> set[int]:
    """The pids of the processes this one started, directly or not, that still run."""
    me = os.getpid()
    found: set[int] = set()
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        with contextlib.suppress(Exception):
            found.update(p.pid for p in mp.active_children() if p.pid)
        forkserver = sys.modules.get("multiprocessing.forkserver")
        server = getattr(forkserver, "_forkserver", None)
        pid = getattr(server, "_forkserver_pid", None)
        if isinstance(pid, int):
            found.add(pid)
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = [me]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    if os.getpgrp() == me:
        # Orphans of ours stay in our group but not under us. Members whose parent is our
        # parent are siblings (`funchost start | tee log`), not ours to end.
        parent = os.getppid()
        found.update(
            pid for pid, (ppid, pgrp, _) in table.items() if pgrp == me and ppid not in (parent, me)
        )
    found.discard(me)
    return {pid for pid in found if _alive(pid)}


def _resource_tracker_pid() -> int | None:
    """multiprocessing's resource tracker, if started: it ignores SIGTERM, and leaves by
    itself (after unlinking what killed processes leaked) once every process that can write
    to it has exited, so it is left to do that."""
    module = sys.modules.get("multiprocessing.resource_tracker")
    tracker = getattr(module, "_resource_tracker", None)
    pid = getattr(tracker, "_pid", None)
    return pid if isinstance(pid, int) else None


def end_child_processes(term_seconds: float = CHILD_TERM_SECONDS) -> int:
    """SIGTERM every child process (`child_processes`), SIGKILL those still running after
    `term_seconds`; how many there were."""
    targets = child_processes() - {_resource_tracker_pid()}
    for pid in targets:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + term_seconds
    running = set(targets)
    while running and time.monotonic() < deadline:
        time.sleep(0.02)
        running = {pid for pid in running if _alive(pid)}
    # Processes started meanwhile (a pool replacing a worker it lost) go too.
    running |= child_processes() - {_resource_tracker_pid()}
    for pid in running:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    mp = sys.modules.get("multiprocessing")
    if mp is not None:  # reap what can be reaped, so no zombie outlives the wait
        with contextlib.suppress(Exception):
            mp.active_children()
    return len(targets | running)


def exit_now(code: int = 0) -> NoReturn:
    """Leave at once: flush the log, silence the process (a thread whose work is cut short may
    still try to print), end the child processes and `os._exit`.

    For when threads still run functions (the interpreter would wait for them) or a stop
    overran its deadline. Exit handlers of the app do not run.
    """
    try:
        logging.disable(logging.CRITICAL)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        end_child_processes()
    finally:
        os._exit(code)


class Watchdog:
    """Bounds a stop: `arm(seconds)` makes the process `exit_now` once that much time has
    passed, unless it has exited first. Arming again can only bring the deadline closer."""

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def arm(self, seconds: float) -> None:
        with self._lock:
            deadline = time.monotonic() + max(seconds, 0.0)
            if self._deadline is not None and self._deadline <= deadline:
                return
            self._deadline = deadline
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="funchost-watchdog", daemon=True
                )
                self._thread.start()
            self._changed.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = self._deadline
                self._changed.clear()
            assert deadline is not None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.wait(remaining)
        log.warning("the host did not stop in time; exiting now")
        exit_now(0)
