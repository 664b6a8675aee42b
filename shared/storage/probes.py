"""Is storage answering? Bounded probes for `GET /` and `GET /ready` (they never create anything
but the app's own tables, queues and containers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.storage.clients import CIRCUITS_CONTAINER, JOBS_QUEUE, JOBS_TABLE, Storage

_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")


def _outcome(future: Future[Any], timeout: float) -> str:
    """ "ok", or a short reason (the exception's class, never its message: it may hold URLs)."""
    try:
        future.result(timeout=max(timeout, 0.0))
    except FutureTimeout:
        return "timed out"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def queue_reachable(storage: Storage, timeout: float = 2.0) -> bool:
    probe = _pool.submit(lambda: storage.queue_unchecked(JOBS_QUEUE).get_queue_properties())
    return _outcome(probe, timeout) == "ok"


def _read_table(storage: Storage) -> None:
    try:
        storage.table(JOBS_TABLE).get_entity("probe", "probe")
    except ResourceNotFoundError:  # the table answered
        pass


def readiness(storage: Storage, timeout: float = 3.0) -> dict[str, str]:
    """Each storage service's answer to a cheap read, probed at once: {"tables": "ok", ...}."""
    checks: dict[str, Callable[[], Any]] = {
        "tables": lambda: _read_table(storage),
        "queues": lambda: storage.queue(JOBS_QUEUE).get_queue_properties(),
        "blobs": lambda: storage.container(CIRCUITS_CONTAINER).get_container_properties(),
    }
    futures = {name: _pool.submit(check) for name, check in checks.items()}
    deadline = time.monotonic() + timeout
    return {name: _outcome(f, deadline - time.monotonic()) for name, f in futures.items()}
