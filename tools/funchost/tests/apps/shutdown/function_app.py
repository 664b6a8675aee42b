"""Shutdown sample app for funchost's tests: functions that keep processes busy for a minute,
as a long simulation does, so that a test can stop the host in the middle of them.

- `work` (queue `%WorkQueue%`): two jobs on a process pool (forkserver, as a simulator pool
  would) and a plain child process (`subprocess`), waited for;
- `spin` (HTTP POST /spin): one `multiprocessing.Process` (spawn) computing, joined.

Every function, and every process it starts, appends what it is (function, pid, dequeue
count) as one JSON line to the file named by FUNCHOST_TEST_RECORDS. With
SHUTDOWN_IMPORT_SECONDS set, importing the app takes that long (to interrupt a start).
"""

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def record(function: str, **extra: Any) -> None:
    line = {"function": function, "pid": os.getpid(), **extra}
    with _lock, open(os.environ["FUNCHOST_TEST_RECORDS"], "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


if os.environ.get("SHUTDOWN_IMPORT_SECONDS") and multiprocessing.parent_process() is None:
    record("import")
    time.sleep(float(os.environ["SHUTDOWN_IMPORT_SECONDS"]))


def burn(seconds: float, what: str) -> int:
    """Compute for `seconds`, as a simulation does."""
    record(what)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += sum(i * i for i in range(1000))
    return count


def pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=2, mp_context=multiprocessing.get_context("forkserver")
            )
        return _pool


@app.queue_trigger(arg_name="msg", queue_name="%WorkQueue%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    seconds = float(msg.get_body().decode("utf-8") or "60")
    jobs = [pool().submit(burn, seconds, "pool-worker") for _ in range(2)]
    sleeper = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])
    record("work", dequeue_count=msg.dequeue_count, sleeper=sleeper.pid)
    for job in jobs:
        job.result()
    sleeper.wait()
    record("work-done", dequeue_count=msg.dequeue_count)


@app.route(route="spin", methods=["POST"])
def spin(req: func.HttpRequest) -> func.HttpResponse:
    seconds = float(req.params.get("seconds", "60"))
    child = multiprocessing.get_context("spawn").Process(target=burn, args=(seconds, "spin-child"))
    child.start()
    record("spin", child=child.pid)
    child.join()
    return func.HttpResponse("done")
