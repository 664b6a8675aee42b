"""Rate limits per API key: a fixed one-minute window counted in Table Storage.

The counter is row `rate` of the key's own partition in `apikeys` (beside row `key`), so the
read that authenticates a request brings the counter with it and a decision costs one more
write: an ETag-guarded increment that every instance shares. A request over the limit writes
nothing. Every header comes from one `Decision`, so they never disagree.

If the counter cannot be written (storage failing), the request goes on: `Decision.unmetered`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from shared.errors import RateLimited, is_storage_outage
from shared.storage import Storage, back_off, get_or_none, write_if_unchanged
from shared.storage.clients import API_KEYS_TABLE

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
RATE_ROW = "rate"
POLICY = "per-key-minute"
_ATTEMPTS = 100


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


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def decide(self, key_id: str, limit: int, row: Any | None) -> Decision:
        """Count one request of `key_id` against `limit` per minute, starting from `row` (the
        key's `rate` row as read with the key, None when it has none yet). Never raises for
        a storage failure: that request is let through, logged."""
        try:
            return self._count(key_id, limit, row)
        except Exception as exc:
            if not (is_storage_outage(exc) or isinstance(exc, CounterContended)):
                raise
            logger.warning("rate limit store failed for key %s: %s", key_id, type(exc).__name__)
            window = _window(time.time())
            return Decision(limit, limit, window + WINDOW_SECONDS, True, unmetered=True)

    def _count(self, key_id: str, limit: int, row: Any | None) -> Decision:
        table = self._storage.table(API_KEYS_TABLE)
        for attempt in range(_ATTEMPTS):
            window = _window(time.time())
            reset_at = window + WINDOW_SECONDS
            same_window = row is not None and int(row.get("window", 0)) == window
            used = int(row["count"]) if row is not None and same_window else 0
            if used >= limit:
                return Decision(limit, 0, reset_at, False)
            entity = {
                "PartitionKey": key_id,
                "RowKey": RATE_ROW,
                "window": window,
                "count": used + 1,
            }
            if write_if_unchanged(table, entity, row):
                return Decision(limit, limit - used - 1, reset_at, True)
            back_off(attempt)
            row = get_or_none(table, key_id, RATE_ROW)
        raise CounterContended(key_id)


def _window(now: float) -> int:
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS
