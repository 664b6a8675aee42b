"""Daily job quotas: reserved atomically at submit, released when a job never ran.

One counter row per user and UTC day in table `quotas` (PartitionKey = user id, RowKey =
`day-YYYY-MM-DD`, `used`), moved only by ETag-guarded writes, so every instance shares it and
concurrent submits never overshoot: of fifty submits against a quota of ten, exactly ten win.
Unlimited tiers move no counter (nothing to refuse; their usage is counted from the jobs).

A reservation is a hold until its job row exists: the write that moves `used` also records the
hold (`holds`, JSON `{ref: [time, runs]}`, ref = the job's `quota_hold`) in the same row. A request
refused before its job row was written gives the hold back (`release_hold`, one conditional
write that finds the hold still there, so it refunds once). A hold whose request died, or
whose give-back failed in a storage outage, is found by `sweep` (the recovery timer) once it
is older than `HOLD_SECONDS`: it is dropped when its job row exists, refunded when not. Holds
whose job was accepted are dropped by this instance's next write of the counter, for free.

An instance keeps the counter row it last wrote (with its ETag), so a reservation is one
write; another instance's write in between costs one read and a retry. A released job that ran
nowhere (cancelled, failed before running) names its job id (`release`); the refund marker row
and the counter move in one transaction, so a release repeated by a redelivery refunds once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import clock
from shared.accounts.tiers import Tier
from shared.errors import Forbidden, ServiceUnavailable
from shared.storage import (
    LOST,
    Lost,
    Storage,
    get_or_none,
    if_match,
    insert_new,
    transact,
    until_written,
    write_if_unchanged,
)
from shared.storage.clients import QUOTAS_TABLE

logger = logging.getLogger(__name__)

_ATTEMPTS = 200  # contention on one counter: every round, one writer wins
_PREFIX = "day-"
HOLD_SECONDS = 180  # older than any request that reserved (the in-request run is bounded)
_KEPT = 10_000


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


@dataclass(frozen=True)
class Hold:
    """A reservation made for a job whose row is not written yet."""

    user_id: str
    day: str
    ref: str


class _Known:
    """This instance's view of one user's counter of one day."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.row: Any | None = None
        self.known = False
        self.accepted: set[str] = set()  # holds whose job rows exist: drop at the next write


class Quotas:
    def __init__(self, storage: Storage, count_today: Callable[[str], int]) -> None:
        """`count_today(user_id)`: the user's jobs today, the usage of unlimited tiers."""
        self._storage = storage
        self._count_today = count_today
        self._counters: dict[tuple[str, str], _Known] = {}
        self._lock = threading.Lock()

    def reserve(self, user_id: str, tier: Tier, ref: str, runs: int = 1) -> Hold | None:
        """Reserve `runs` of today's jobs for `user_id`, held under `ref` until `accepted`;
        None for an unlimited tier (nothing is counted). Raises `QuotaExceeded` (403,
        `Retry-After` to the next UTC midnight) when fewer than `runs` remain."""
        limit = tier.daily_jobs
        if limit is None:
            return None
        day = today()
        known = self._known(user_id, day)

        def attempt(n: int) -> Hold | Lost:
            if not known.known:
                known.row, known.known = get_or_none(self._table, user_id, _PREFIX + day), True
            row = known.row
            used = int(row["used"]) if row is not None else 0
            if used + runs > limit:
                raise QuotaExceeded(
                    f"The {tier.name} tier runs {limit} jobs a day; {max(limit - used, 0)} "
                    f"left today, {runs} asked. The quota resets at midnight UTC.",
                    headers={"Retry-After": str(seconds_to_midnight())},
                    extra={"daily_limit": limit, "used": used},
                )
            holds = {k: v for k, v in _holds(row).items() if k not in known.accepted}
            holds[ref] = [clock.now_iso(), runs]
            entity = _counter(user_id, day, used + runs, holds)
            written = write_if_unchanged(self._table, entity, row)
            if written is None:
                known.known = False
                return LOST
            known.row = written
            known.accepted.clear()
            return Hold(user_id, day, ref)

        with known.lock:
            return until_written(attempt, busy=_busy("submits"), tries=_ATTEMPTS)

    def accepted(self, hold: Hold | None) -> None:
        """The hold's job row exists: its hold is dropped at this instance's next write."""
        if hold is not None:
            self._known(hold.user_id, hold.day).accepted.add(hold.ref)

    def release_hold(self, hold: Hold | None) -> bool:
        """Give back a hold (the runs it reserved) whose job was never accepted; False when it
        was given back (or swept) already. Raises what storage raises: the sweep gives back
        what this could not."""
        if hold is None:
            return False
        known = self._known(hold.user_id, hold.day)

        def attempt(n: int) -> bool | Lost:
            row = get_or_none(self._table, hold.user_id, _PREFIX + hold.day)
            holds = _holds(row)
            if row is None or hold.ref not in holds:
                return False
            runs = int(holds.pop(hold.ref)[1])
            used = max(int(row["used"]) - runs, 0)
            entity = _counter(hold.user_id, hold.day, used, holds)
            written = write_if_unchanged(self._table, entity, row)
            if written is None:
                return LOST
            known.row, known.known = written, True
            logger.info("quota: hold %s given back to %s", hold.ref, hold.user_id)
            return True

        with known.lock:
            return until_written(attempt, busy=_busy("changes"), tries=_ATTEMPTS)

    def sweep(self, accepted: Callable[[str, str], bool], older_than: str) -> int:
        """Settle holds made before `older_than` (ISO time): dropped where `accepted(user_id,
        ref)` (its job row exists), given back where not. Returns how many were given back."""
        given_back = 0
        for row in self._table.query_entities("holding gt 0"):
            user_id, day = str(row["PartitionKey"]), str(row["RowKey"])[len(_PREFIX) :]
            for ref, (made, _) in _holds(row).items():
                if made >= older_than:
                    continue
                if accepted(user_id, ref):
                    self._drop_hold(user_id, day, ref)
                elif self.release_hold(Hold(user_id, day, ref)):
                    given_back += 1
                    logger.warning("quota: hold %s of %s had no job; given back", ref, user_id)
        return given_back

    def _drop_hold(self, user_id: str, day: str, ref: str) -> None:
        def attempt(n: int) -> None | Lost:
            row = get_or_none(self._table, user_id, _PREFIX + day)
            holds = _holds(row)
            if row is None or ref not in holds:
                return None
            del holds[ref]
            entity = _counter(user_id, day, int(row["used"]), holds)
            if not write_if_unchanged(self._table, entity, row):
                return LOST
            self._known(user_id, day).known = False
            return None

        try:
            until_written(attempt, busy=_busy("changes"), tries=_ATTEMPTS)
        except QuotaBusy:  # the next sweep drops it
            logger.warning("quota: hold %s of %s not dropped now: contended", ref, user_id)

    def _known(self, user_id: str, day: str) -> _Known:
        key = (user_id, day)
        known = self._counters.get(key)
        if known is None:
            with self._lock:
                known = self._counters.get(key)
                if known is None:
                    if len(self._counters) >= _KEPT:
                        self._counters.clear()
                    known = self._counters[key] = _Known()
        return known

    def release(self, user_id: str, day: str, runs: int, *, ref: str) -> bool:
        """Give back `runs` reserved on `day` for `ref` (a job id), once: False when `ref` was
        already refunded. The counter never goes below zero."""
        if runs <= 0:
            return False
        marker_key = f"refund-{ref}"
        marker = {"PartitionKey": user_id, "RowKey": marker_key, "day": day, "runs": runs}

        def attempt(n: int) -> bool | Lost:
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
                self._known(user_id, day).known = False  # moved without this instance's etag
                logger.info("quota: %d run(s) of %s refunded to %s", runs, day, user_id)
                return True
            if get_or_none(self._table, user_id, marker_key) is not None:
                return False
            return LOST

        return until_written(attempt, busy=_busy("changes"), tries=_ATTEMPTS)

    def use(self, user_id: str, tier: Tier) -> QuotaUse:
        """How many of today's jobs `user_id` has used."""
        day = today()
        if tier.daily_jobs is None:  # no counter: its jobs are its usage
            return QuotaUse(day=day, used=self._count_today(user_id), limit=None)
        row = get_or_none(self._table, user_id, _PREFIX + day)
        return QuotaUse(day=day, used=int(row["used"]) if row else 0, limit=tier.daily_jobs)

    @property
    def _table(self) -> Any:
        return self._storage.table(QUOTAS_TABLE)


def _holds(row: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """The row's holds: ref -> [when made (ISO), runs reserved]."""
    return dict(json.loads(row.get("holds") or "{}")) if row is not None else {}


def _counter(user_id: str, day: str, used: int, holds: Mapping[str, list[Any]]) -> dict[str, Any]:
    return {
        "PartitionKey": user_id,
        "RowKey": _PREFIX + day,
        "used": used,
        "holds": json.dumps(dict(holds), separators=(",", ":")),
        "holding": len(holds),
    }


def _busy(what: str) -> Callable[[], QuotaBusy]:
    return lambda: QuotaBusy(f"Too many {what} at once for this account; retry shortly")
