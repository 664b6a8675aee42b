"""Rate limits per API key: a fixed one-minute window, counted in Table Storage by leases.

The shared counter is row `rate` of the key's own partition in `apikeys` (beside row `key`):
`window` (epoch seconds of the minute) and `count`, the requests that minute's leases hold.
An instance does not write it per request: one ETag-guarded write takes a lease of the next
`lease_size(limit)` requests of the window (limit/20, at least 1, never past the limit) and
the instance hands them out from memory, keeping the ETag its write returned, so the next
lease needs no read unless another instance wrote in between (then one read and a retry).

Bounds, on every instance together:
- never more than `limit` requests in one window: every lease is a conditional write that
  keeps `count <= limit`, so there is no overshoot within a window (a fixed window lets up to
  2 x limit through across a window's boundary, as any fixed window does);
- a lease's unused requests lapse when its window ends, so with N instances serving one key
  up to (lease_size - 1) x (N - 1) requests of a window may be refused early.
A request over the limit writes nothing; once a window is full the instance refuses the rest
of it without asking storage. If the counter cannot be written (storage failing), the request
goes on, uncounted (`Decision.unmetered`), and says so in its log line.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from shared.errors import RateLimited, is_storage_outage
from shared.storage import LOST, Lost, Storage, get_or_none, until_written, write_if_unchanged
from shared.storage.clients import API_KEYS_TABLE

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
RATE_ROW = "rate"
POLICY = "per-key-minute"
LEASE_FRACTION = 20  # a lease is limit/20 of a window's requests
_ATTEMPTS = 100
_KEPT = 10_000  # keys whose counters an instance keeps in memory


class CounterContended(RuntimeError):
    """Every attempt to move the counter lost a race (not seen in practice)."""


@dataclass(frozen=True)
class Decision:
    limit: int
    remaining: int
    reset_at: int  # epoch seconds when the window ends
    allowed: bool
    unmetered: bool = False  # the store failed: the request was let through uncounted

    def seconds_to_reset(self) -> int:
        return max(int(self.reset_at - time.time() + 0.999), 1)

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-*` and the IETF draft's `RateLimit` / `RateLimit-Policy` pair."""
        reset_in = self.seconds_to_reset()
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
            "RateLimit-Policy": f'"{POLICY}";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={reset_in}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(reset_in)
        return headers

    def refusal(self) -> RateLimited:
        return RateLimited(
            f"Rate limit of {self.limit} requests per minute reached for this API key; "
            f"retry in {self.seconds_to_reset()} s",
            headers=self.headers(),
        )


def lease_size(limit: int) -> int:
    return max(limit // LEASE_FRACTION, 1)


class _Counter:
    """What this instance knows of one key's counter, and the lease it holds."""

    def __init__(self, limit: int) -> None:
        self.lock = threading.Lock()
        self.limit = limit
        self.row: Any | None = None  # the stored row as last read or written
        self.known = False  # `row` is what storage holds, as far as we know
        self.window = -1  # the window of the lease
        self.next = 1  # the number of the next request of the window this lease gives
        self.end = 0  # the last number the lease holds
        self.full = -1  # a window found full: refuse the rest of it without asking

    def seen(self, row: Any | None) -> None:
        """The row as the key's lookup just read it."""
        self.row, self.known = row, True


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._counters: dict[str, _Counter] = {}
        self._lock = threading.Lock()

    def seen(self, key_id: str, limit: int, row: Any | None) -> None:
        """`row`: the key's `rate` row (None: it has none), read with the key just now."""
        self._counter(key_id, limit).seen(row)

    def decide(self, key_id: str, limit: int) -> Decision:
        """Count one request of `key_id` against `limit` per minute. Never raises for a
        storage failure: that request is let through, logged."""
        counter = self._counter(key_id, limit)
        with counter.lock:
            window = _window(time.time())
            reset_at = window + WINDOW_SECONDS
            if counter.full == window:
                return Decision(limit, 0, reset_at, False)
            if counter.window != window or counter.next > counter.end:
                try:
                    if not self._lease(key_id, counter, window):
                        counter.full = window
                        return Decision(limit, 0, reset_at, False)
                except Exception as exc:
                    if not (is_storage_outage(exc) or isinstance(exc, CounterContended)):
                        raise
                    counter.known = False
                    logger.warning(
                        "rate limit store failed for key %s: %s", key_id, type(exc).__name__
                    )
                    return Decision(limit, limit, reset_at, True, unmetered=True)
            number = counter.next
            counter.next += 1
            return Decision(limit, limit - number, reset_at, True)

    def _lease(self, key_id: str, counter: _Counter, window: int) -> bool:
        """Take the next lease of `window` for `counter`; False when the window is full."""
        table = self._storage.table(API_KEYS_TABLE)

        def attempt(n: int) -> bool | Lost:
            if not counter.known:
                counter.row, counter.known = get_or_none(table, key_id, RATE_ROW), True
            row = counter.row
            same_window = row is not None and int(row.get("window", 0)) == window
            used = int(row["count"]) if row is not None and same_window else 0
            if used >= counter.limit:
                return False
            size = min(lease_size(counter.limit), counter.limit - used)
            entity = {"PartitionKey": key_id, "RowKey": RATE_ROW, "window": window}
            entity["count"] = used + size
            written = write_if_unchanged(table, entity, row)
            if written is None:
                counter.known = False  # another instance wrote: read it again
                return LOST
            counter.row = written
            counter.window, counter.next, counter.end = window, used + 1, used + size
            return True

        return until_written(attempt, busy=lambda: CounterContended(key_id), tries=_ATTEMPTS)

    def _counter(self, key_id: str, limit: int) -> _Counter:
        counter = self._counters.get(key_id)
        if counter is None or counter.limit != limit:  # new, or the key's tier changed
            with self._lock:
                counter = self._counters.get(key_id)
                if counter is None or counter.limit != limit:
                    if len(self._counters) >= _KEPT:  # bounded: a lapsed lease costs nothing
                        self._counters.clear()
                    counter = self._counters[key_id] = _Counter(limit)
        return counter


def _window(now: float) -> int:
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS
