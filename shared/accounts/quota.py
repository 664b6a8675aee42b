"""Daily job quotas: reserved atomically at submit, released when a job never ran.

One counter row per user and UTC day in table `quotas` (PartitionKey = user id, RowKey =
`day-YYYY-MM-DD`, `used`), moved only by ETag-guarded writes, so every instance shares it and
concurrent submits never overshoot: of fifty submits against a quota of ten, exactly ten win.
A release names what it refunds (a job id); the refund marker row and the counter move in one
transaction, so a release repeated by a redelivery refunds once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import clock
from shared.accounts.tiers import Tier
from shared.errors import Forbidden, ServiceUnavailable
from shared.storage import (
    Storage,
    back_off,
    get_or_none,
    if_match,
    insert_new,
    transact,
    write_if_unchanged,
)
from shared.storage.clients import QUOTAS_TABLE

logger = logging.getLogger(__name__)

_ATTEMPTS = 200  # contention on one counter: every round, one writer wins
_PREFIX = "day-"


class QuotaExceeded(Forbidden):
    code = "QUOTA_EXCEEDED"


class QuotaBusy(ServiceUnavailable):
    """The counter stayed contended past every attempt (not seen in practice)."""

    code = "QUOTA_BUSY"


@dataclass(frozen=True)
class QuotaUse:
    day: str  # YYYY-MM-DD (UTC)
    used: int
    limit: int | None  # None: unlimited

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def resets_at(self) -> str:
        """The next midnight UTC after `day`."""
        day = datetime.strptime(self.day, "%Y-%m-%d").replace(tzinfo=UTC)
        return clock.iso(day + timedelta(days=1))


def today() -> str:
    return clock.utcnow().strftime("%Y-%m-%d")


def seconds_to_midnight() -> int:
    """Whole seconds until the next UTC midnight (at least 1): when the quota resets."""
    moment = clock.utcnow()
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(int((midnight - moment).total_seconds() + 0.999), 1)


class Quotas:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def reserve(self, user_id: str, tier: Tier, runs: int = 1) -> str:
        """Reserve `runs` of today's jobs for `user_id`; returns the day reserved (to release
        it later). Raises `QuotaExceeded` (403, `Retry-After` to the next UTC midnight) when
        fewer than `runs` remain; the counter moves for unlimited tiers too, for usage."""
        day = today()
        limit = tier.daily_jobs
        for attempt in range(_ATTEMPTS):
            row = get_or_none(self._table, user_id, _PREFIX + day)
            used = int(row["used"]) if row is not None else 0
            if limit is not None and used + runs > limit:
                raise QuotaExceeded(
                    f"The {tier.name} tier runs {limit} jobs a day; {max(limit - used, 0)} "
                    f"left today, {runs} asked. The quota resets at midnight UTC.",
                    headers={"Retry-After": str(seconds_to_midnight())},
                    extra={"daily_limit": limit, "used": used},
                )
            entity = {"PartitionKey": user_id, "RowKey": _PREFIX + day, "used": used + runs}
            if write_if_unchanged(self._table, entity, row):
                return day
            back_off(attempt)
        raise QuotaBusy("Too many submits at once for this account; retry shortly")

    def release(self, user_id: str, day: str, runs: int, *, ref: str) -> bool:
        """Give back `runs` reserved on `day` for `ref` (a job id), once: False when `ref` was
        already refunded. The counter never goes below zero."""
        if runs <= 0:
            return False
        marker_key = f"refund-{ref}"
        marker = {"PartitionKey": user_id, "RowKey": marker_key, "day": day, "runs": runs}
        for attempt in range(_ATTEMPTS):
            row = get_or_none(self._table, user_id, _PREFIX + day)
            if row is None:  # nothing was reserved that day: only remember the refund
                done = insert_new(self._table, marker) is not None
            else:
                used = max(int(row["used"]) - runs, 0)
                counter = {"PartitionKey": user_id, "RowKey": _PREFIX + day, "used": used}
                operations: list[tuple[Any, ...]] = [
                    ("create", marker),  # fails the whole transaction when refunded already
                    ("update", counter, if_match(row.metadata["etag"])),
                ]
                done = transact(self._table, operations)
            if done:
                logger.info("quota: %d run(s) of %s refunded to %s", runs, day, user_id)
                return True
            if get_or_none(self._table, user_id, marker_key) is not None:
                return False
            back_off(attempt)
        raise QuotaBusy("Too many changes at once for this account; retry shortly")

    def use(self, user_id: str, tier: Tier) -> QuotaUse:
        """How many of today's jobs `user_id` has used."""
        day = today()
        row = get_or_none(self._table, user_id, _PREFIX + day)
        return QuotaUse(day=day, used=int(row["used"]) if row else 0, limit=tier.daily_jobs)

    @property
    def _table(self) -> Any:
        return self._storage.table(QUOTAS_TABLE)
