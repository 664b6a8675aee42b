"""Cold start of the gateway, each figure beside a baseline in the same run (medians of RUNS).

(a) import: `import function_app` in a fresh interpreter (cwd = the repository root), beside
    `import azure.functions` alone; `import qiskit, qiskit_aer` (what the app loads lazily, on
    the first circuit) is shown for reference. One untimed run of each comes first; with
    PYTHONDONTWRITEBYTECODE set no bytecode caches are written, so modules without a .pyc are
    compiled on every run (the script prints which case it measured).
(b) start: from starting the funchost process to the first 200 on `GET /health` of this app,
    beside the same for the trivial app `bench/apps/funchost_bench` (`GET /ping`); both on the
    same Azurite, polled every 5 ms.
(c) first circuit: in the same starts of this app, after /health answered: the first
    `POST /admin/users`, then the first `POST /execute-sync` with a Bell circuit (which pays for
    the lazy qiskit/Aer imports), beside the second one (warm); and the total from process start
    to the first execute-sync 200.
One untimed start of each app comes first (creating the tables and queues on Azurite).
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/cold_start.py`.
"""

from __future__ import annotations

import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from _common import BELL, ROOT, call, gateway_env
from funchost.testing import Azurite, FuncHost

BENCH_APP = Path(__file__).resolve().parent / "apps" / "funchost_bench"
ADMIN_KEY = "bench-admin-key-cold-start"
RUNS = 5
POLL = 0.005
START_TIMEOUT = 60.0


def import_time(statement: str) -> float:
    """Seconds a fresh interpreter spends on `statement` (an import), measured inside it."""
    code = f"import time; t=time.perf_counter(); {statement}; print(time.perf_counter()-t)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def median_import(statement: str) -> float:
    import_time(statement)  # bytecode caches
    return statistics.median(import_time(statement) for _ in range(RUNS))


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    port: int
    t0: float  # perf_counter just before the process was started
    log: IO[bytes]

    def log_tail(self) -> str:
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-40:])


@contextmanager
def launched(app_dir: Path, env: dict[str, str]) -> Iterator[Started]:
    """funchost on `app_dir` as a child process (FuncHost's command line and environment),
    started here so the clock starts at the process start; stopped on leaving the block."""
    spec = FuncHost(app_dir, env=env)
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        process = subprocess.Popen(
            spec.command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=app_dir,
            env=spec.child_env(),
            start_new_session=True,
        )
        try:
            yield Started(process, spec.port, t0, log)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            spec.close()


def request(
    port: int,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, Any]:
    """`call` on a connection of its own, closed after the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return call(conn, method, path, body, headers)
    finally:
        conn.close()


def first_200(started: Started, path: str) -> float:
    """Seconds from the process start to the first 200 on `GET path`."""
    deadline = time.perf_counter() + START_TIMEOUT
    while time.perf_counter() < deadline:
        if started.process.poll() is not None:
            raise RuntimeError(
                f"funchost exited with {started.process.returncode}:\n{started.log_tail()}"
            )
        try:
            status, _ = request(started.port, "GET", path, timeout=5)
            if status == 200:
                return time.perf_counter() - started.t0
        except OSError:
            pass
        time.sleep(POLL)
    raise RuntimeError(f"no 200 on {path} within {START_TIMEOUT:g} s:\n{started.log_tail()}")


def timed(started: Started, method: str, path: str, body: dict[str, Any], key: str,
          expect: int) -> tuple[float, Any]:
    t0 = time.perf_counter()
    status, answer = request(started.port, method, path, body, {"X-API-Key": key})
    elapsed = time.perf_counter() - t0
    if status != expect:
        raise RuntimeError(f"{method} {path} answered {status}: {answer}\n{started.log_tail()}")
    return elapsed, answer


@dataclass
class AppStart:
    health: float
    create_user: float
    first_sync: float
    second_sync: float
    to_first_sync: float


def gateway_start(env: dict[str, str], run: int) -> AppStart:
    with launched(ROOT, env) as started:
        health = first_200(started, "/health")
        create, user = timed(
            started, "POST", "/admin/users",
            {"email": f"bench-cold-{run}@example.com", "tier": "enterprise"}, ADMIN_KEY, 201,
        )
        sync_body = {"qasm": BELL, "shots": 1024}
        first, _ = timed(started, "POST", "/execute-sync", sync_body, user["api_key"], 200)
        to_first_sync = time.perf_counter() - started.t0
        second, _ = timed(started, "POST", "/execute-sync", sync_body, user["api_key"], 200)
        return AppStart(health, create, first, second, to_first_sync)


def bench_app_start(env: dict[str, str]) -> float:
    with launched(BENCH_APP, env) as started:
        return first_200(started, "/ping")


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:6.0f} ms"


def main() -> None:
    app_import = median_import("import function_app")
    func_import = median_import("import azure.functions")
    qiskit_import = median_import("import qiskit, qiskit_aer")
    caches = (
        "not written (PYTHONDONTWRITEBYTECODE is set): the app's modules compile on each import"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "written by the untimed first run"
    )
    print(f"(a) import, median of {RUNS} fresh interpreters:\n"
          f"    function_app      {app_import * 1000:6.0f} ms\n"
          f"    azure.functions   {func_import * 1000:6.0f} ms  (baseline; "
          f"function_app/baseline {app_import / func_import:.1f}x)\n"
          f"    qiskit+qiskit_aer {qiskit_import * 1000:6.0f} ms  (loaded lazily, on the first "
          f"circuit)\n"
          f"    bytecode caches: {caches}")

    with Azurite() as azurite:
        env = gateway_env(azurite, ADMIN_KEY)
        gateway_start(env, 0)  # untimed: tables, queues, caches
        bench_app_start(env)
        gateway: list[AppStart] = []
        trivial: list[float] = []
        for run in range(1, RUNS + 1):
            gateway.append(gateway_start(env, run))
            trivial.append(bench_app_start(env))

    health = [g.health for g in gateway]
    print(f"(b) process start -> first 200, median of {RUNS} starts:\n"
          f"    gateway GET /health             {ms(health)}\n"
          f"    trivial app GET /ping           {ms(trivial)}  (baseline; gateway/baseline "
          f"{statistics.median(health) / statistics.median(trivial):.2f}x)")
    print(f"(c) after /health answered, same starts (median of {RUNS}):\n"
          f"    first POST /admin/users         {ms([g.create_user for g in gateway])}\n"
          f"    first POST /execute-sync (Bell) {ms([g.first_sync for g in gateway])}  "
          f"(includes the lazy qiskit/Aer imports)\n"
          f"    second POST /execute-sync       {ms([g.second_sync for g in gateway])}  (warm)\n"
          f"    process start -> first execute-sync 200  "
          f"{ms([g.to_first_sync for g in gateway])}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
