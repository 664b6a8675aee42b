"""Simulator processes: heavy runs in processes of their own, each one stoppable.

Aer holds the GIL for a whole run, so a heavy run inline would freeze every function of the host
(`aer` says when a run is heavy). Each run here goes to one process of a small set (`size`,
default one per CPU), which runs one call at a time; the calling thread waits on a pipe without
holding the GIL. Unlike a `ProcessPoolExecutor`, a single run can be stopped: its process is
killed and the next run starts another. That is how a run is held to its wall-clock limit, and
how a cancelled job's run ends:

- `seconds`: a run still going after this long is killed: `RunTimeLimitExceeded` (400, the job
  fails with RUN_TIME_LIMIT_EXCEEDED whatever its estimate said);
- `stopped`: asked about every `check_every_s` while the run goes on (never for a run that ends
  sooner); True kills the run: `RunStopped`;
- a process that dies under a run (the OOM killer) answers `SimulatorUnavailable` (503: the queue
  retries; the culprit fails on its last delivery).

Nothing outlives the host: the processes are forked by multiprocessing's fork server, which the
kernel kills when the host dies (`PR_SET_PDEATHSIG`, Linux: `deathsig` is in its preload), and
each process is killed in turn when the fork server goes; they ignore Ctrl-C (the host decides
when it stops), and every process is killed at exit. The time waiting for a free process is
not part of a run's limit.

A function run here is a module-level function returning its result, or a `Refused` (a refusal
made in the child, raised in the caller as `SimulationError`); `report_progress` inside it sends
the caller's `progress` callback what the run has done so far.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import BadRequest, ServiceUnavailable

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

# How often a long run's `stopped` is asked.
CHECK_EVERY_S = 1.0
# Imported once in the process that forks the others, so a new process starts warm; the last
# makes that process die with the host.
_PRELOAD = ["qiskit", "qiskit_aer", "shared.suppliers.deathsig"]


class SimulatorUnavailable(ServiceUnavailable):
    """The simulator's process died under this job (perhaps not its fault): retry it."""

    code = "SIMULATOR_UNAVAILABLE"


class SimulationError(BadRequest):
    """The simulator cannot run this circuit, and retrying will not change that: too wide for
    the method, not enough memory, an instruction it does not know. The message is safe to show."""

    code = "SIMULATION_FAILED"


class RunTimeLimitExceeded(BadRequest):
    """The run went on past its wall-clock limit and was stopped."""

    code = "RUN_TIME_LIMIT_EXCEEDED"


class RunStopped(Exception):
    """The run was stopped because its caller's `stopped` said so (a cancelled job)."""


@dataclass(frozen=True)
class Refused:
    """A refusal made in a child process, sent back as data (the parent raises it anew rather
    than unpickling an exception)."""

    detail: str
    error_code: str = SimulationError.code


class _Worker:
    def __init__(self, context: Any) -> None:
        parent, child = context.Pipe()
        self.conn: Connection = parent
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child,), daemon=True, name="qcos-simulator"
        )
        self.process.start()
        child.close()

    def kill(self) -> None:
        try:
            self.process.kill()
            self.process.join(timeout=5)
        except Exception as exc:  # already gone, or never started
            logger.debug("simulator process not killed: %s", exc)
        self.conn.close()


class Processes:
    """At most `size` simulator processes, started as runs need them."""

    def __init__(self, size: int | None = None) -> None:
        self.size = max(1, size or os.cpu_count() or 1)
        self._lock = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False
        self._context: Any = None
        self.finished = 0  # runs that came back (refusals included)

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        what: str,
        seconds: float | None = None,
        stopped: Callable[[], bool] | None = None,
        progress: Callable[[Any], None] | None = None,
        check_every_s: float = CHECK_EVERY_S,
    ) -> Any:
        """`fn(*args)` in a simulator process (module docstring); `what` names it in errors."""
        worker = self._acquire()
        healthy = False
        try:
            worker.conn.send((fn, args))
            outcome = self._wait(worker, what, seconds, stopped, progress, check_every_s)
            healthy = True
        except (EOFError, OSError) as exc:
            raise SimulatorUnavailable(
                f"{what}'s process stopped while running circuits (most likely one ran out of"
                " memory); the job will be retried"
            ) from exc
        finally:
            self._release(worker, healthy)
        with self._lock:
            self.finished += 1
        kind, value = outcome
        if kind == "error":
            raise value
        if isinstance(value, Refused):
            raise SimulationError(value.detail, error_code=value.error_code)
        return value

    def _wait(
        self,
        worker: _Worker,
        what: str,
        seconds: float | None,
        stopped: Callable[[], bool] | None,
        progress: Callable[[Any], None] | None,
        check_every_s: float,
    ) -> tuple[str, Any]:
        started = time.monotonic()
        deadline = None if seconds is None else started + seconds
        next_check = started + check_every_s
        while True:
            now = time.monotonic()
            # asked every `check_every_s` even while progress reports keep the pipe busy
            if stopped is not None and now >= next_check:
                next_check = now + check_every_s
                if stopped():
                    raise RunStopped(f"{what} was stopped")
            wait = max(next_check - now, 0.0) if stopped is not None else None
            if deadline is not None:
                if now >= deadline:
                    raise RunTimeLimitExceeded(
                        f"{what} ran for more than {seconds:g} s, the limit of a run, and was"
                        " stopped"
                    )
                wait = deadline - now if wait is None else min(wait, deadline - now)
            if worker.conn.poll(wait):
                kind, value = worker.conn.recv()
                if kind == "progress":
                    if progress is not None:
                        progress(value)
                    continue
                return kind, value

    def _acquire(self) -> _Worker:
        with self._lock:
            while True:
                if self._closed:
                    raise SimulatorUnavailable("The simulator is shutting down; retry later")
                if self._idle:
                    worker = self._idle.pop()
                    if worker.process.is_alive():
                        break
                    worker.kill()
                    continue
                if len(self._busy) < self.size:
                    worker = _Worker(self._get_context())
                    break
                self._lock.wait()
            self._busy.add(worker)
            return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            worker.kill()  # mid-run (stopped, out of time, or dead): never reused
        with self._lock:
            self._busy.discard(worker)
            if healthy and not self._closed:
                self._idle.append(worker)
            elif healthy:
                worker.kill()
            self._lock.notify()

    def _get_context(self) -> Any:
        if self._context is None:
            import multiprocessing

            methods = multiprocessing.get_all_start_methods()
            # Never "fork" in a multi-threaded process.
            if "forkserver" in methods:
                self._context = multiprocessing.get_context("forkserver")
                self._context.set_forkserver_preload(_PRELOAD)
                _start_fork_server()
            else:
                self._context = multiprocessing.get_context("spawn")
        return self._context

    def processes(self) -> list[int]:
        """The pids of the processes alive now."""
        with self._lock:
            workers = [*self._idle, *self._busy]
        return [w.process.pid for w in workers if w.process.pid and w.process.is_alive()]

    def close(self) -> None:
        """Kill every process, busy or idle: their callers get `SimulatorUnavailable`."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._lock.notify_all()
        for worker in workers:
            worker.kill()


def _start_fork_server() -> None:
    """Start the fork server from a thread that lasts as long as the host: the kernel's "kill me
    when my parent goes" is tied to the thread that started a process, and a request's or a
    worker's thread may end before the host does."""
    from multiprocessing import forkserver

    started = threading.Event()

    def launcher() -> None:
        forkserver.ensure_running()
        started.set()
        threading.Event().wait()  # never returns: the fork server's parent thread lives on

    threading.Thread(target=launcher, name="qcos-simulator-launcher", daemon=True).start()
    started.wait(timeout=60)


# --- in the child ----------------------------------------------------------------------------

_parent: Connection | None = None


def report_progress(value: Any) -> None:
    """From inside a function running in a simulator process: tell the caller how far it got."""
    if _parent is not None:
        _parent.send(("progress", value))


def _serve(conn: Connection) -> None:
    """A simulator process: run what the parent sends, one call at a time, until it hangs up."""
    global _parent
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's to handle
    _parent = conn
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            outcome: tuple[str, Any] = ("done", fn(*args))
        except Exception as exc:  # a bug, not the circuit's fault: raised in the caller
            outcome = ("error", exc)
        try:
            conn.send(outcome)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an exception or result that does not pickle
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send this process `sig` when the thread that started it ends (with its
    process): a killed host leaves no run. Elsewhere the parent kills its processes at exit."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, sig)
    except Exception:  # not Linux
        return


# --- the host's processes ----------------------------------------------------------------------

_lock = threading.Lock()
_processes: Processes | None = None
_size: int | None = None
_exit_registered = False


def configure(size: int | None) -> None:
    """The number of processes (None: one per CPU), read when they are first needed."""
    global _size
    _size = size


def shared() -> Processes:
    """This host's simulator processes, made on first use."""
    global _processes, _exit_registered
    with _lock:
        if _processes is None:
            _processes = Processes(_size)
            if not _exit_registered:
                _register_exit(shutdown)
                _exit_registered = True
        return _processes


def shutdown() -> None:
    """Kill this host's simulator processes (at exit; a later run makes new ones)."""
    global _processes
    with _lock:
        processes, _processes = _processes, None
    if processes is not None:
        processes.close()


def _register_exit(fn: Callable[[], None]) -> None:
    """Call `fn` at exit, before threads are joined where possible (a thread waiting on a run
    would otherwise hold the exit up until the run ends)."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(fn)
            return
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(fn)
