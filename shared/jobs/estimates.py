"""How long a newly queued job will take: recent measured execution times and the queue's depth.

Workers fold each job's execution time into a moving average kept in process and written to the
`jobstats` table at most every few seconds, so every instance's estimate reflects every worker.
Submits read the row and the queue depth at most every few seconds; a failure to read them never
fails a submit (the last known figures are used).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from shared.jobs.repository import JobRepository
from shared.storage import Storage, get_or_none
from shared.storage.clients import STATS_TABLE

logger = logging.getLogger(__name__)

_PARTITION, _ROW = "qiskit_aer", "recent"
_DEFAULT_MS = 50.0  # before any job has been measured
_ALPHA = 0.2  # weight of the newest sample in the moving average
_READ_EVERY_S = 5.0
_WRITE_EVERY_S = 2.0


class Estimator:
    def __init__(
        self,
        storage: Storage,
        repo: JobRepository,
        parallelism: int,
        *,
        write_every_s: float = _WRITE_EVERY_S,
    ) -> None:
        self._storage = storage
        self._write_every_s = write_every_s
        self._repo = repo
        self._parallelism = parallelism
        self._lock = threading.Lock()
        self._avg_ms = _DEFAULT_MS
        self._depth = 0
        self._read_at = -math.inf
        self._local_ms: float | None = None
        self._written_at = -math.inf

    def seconds(self, run_s: float | None = None) -> int:
        """Estimated seconds until a job queued now completes (at least 1): the wait behind
        the queue, then its own run (`run_s` when its estimate is known, else the mean)."""
        self._refresh()
        waves = self._depth / self._parallelism
        own_ms = self._avg_ms if run_s is None else run_s * 1000
        return max(1, math.ceil((self._avg_ms * waves + own_ms) / 1000))

    def mean_seconds(self) -> float:
        """The measured mean execution time of recent jobs, in seconds."""
        self._refresh()
        return self._avg_ms / 1000

    def record(self, execution_ms: float) -> None:
        """Fold one job's measured execution time into the shared average."""
        with self._lock:
            prev = self._local_ms if self._local_ms is not None else self._avg_ms
            self._local_ms = (1 - _ALPHA) * prev + _ALPHA * execution_ms
            due = time.monotonic() - self._written_at >= self._write_every_s
            if due:
                self._written_at = time.monotonic()
            value = self._local_ms
        if due:
            try:
                self._table().upsert_entity(
                    {"PartitionKey": _PARTITION, "RowKey": _ROW, "avg_ms": value}
                )
            except Exception as exc:  # an estimate is never worth failing a job over
                logger.warning("could not store execution statistics: %s", type(exc).__name__)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at < _READ_EVERY_S:
            return
        self._read_at = now
        try:
            row = get_or_none(self._table(), _PARTITION, _ROW)
            if row is not None:
                self._avg_ms = float(row["avg_ms"])
            self._depth = self._repo.queue_depth()
        except Exception as exc:
            logger.warning("could not read queue statistics: %s", type(exc).__name__)

    def _table(self) -> Any:
        return self._storage.table(STATS_TABLE)
