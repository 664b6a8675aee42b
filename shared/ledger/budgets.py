"""Budgets per tenant or project, and the reservations held against them.

A budget row lives in table `budgets`, PartitionKey = the tenant, RowKey = `tenant` or
`project:<project>`, with `period` (daily | monthly, UTC), `limit` and `currency`.

A cloud job reserves its estimate at submit (`reserve`) against every budget that applies: the
tenant's and its project's, when they are in the job's currency. Each budget has one counter
row per period in the same partition, RowKey `use:<budget row key>:<currency>:<period>:<start
yyyymmdd>` (e.g. `use:project:vqe:USD:monthly:20261101`), field `reserved` (decimal text):
the estimates accepted in that period and not given back. Counters move only by ETag-guarded
writes, and the counters of one job move in one entity-group transaction, so concurrent
submits never overshoot (of twenty 80 USD jobs against a 100 USD budget exactly one wins) and
a refusal by one budget leaves the other's counter where it was.

A reservation is closed once, by the first of `release` (the job was never accepted, or ended
before its supplier ran it: the estimate is given back) and `settle` (the job was charged: the
counter holds the actual cost instead of the estimate). The marker row `done:<sha256(ref)>` and
the counter moves are one transaction, so a repeated close (a redelivery) moves nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from shared import clock
from shared.errors import Forbidden, ServiceUnavailable
from shared.ledger.models import amount
from shared.storage import LOST, Lost, Storage, get_or_none, if_match, transact, until_written
from shared.storage.clients import BUDGETS_TABLE
from shared.storage.query import literal

logger = logging.getLogger(__name__)

_ATTEMPTS = 200  # contention on one counter: every round, one writer wins
_TENANT_ROW = "tenant"
_PROJECT_ROW = "project:"
# Budget rows only: the partition also holds counters (`use:…`) and close markers (`done:…`).
_BUDGET_ROWS = "(RowKey eq 'tenant' or (RowKey ge 'project:' and RowKey lt 'project;'))"


class BudgetExceeded(Forbidden):
    code = "BUDGET_EXCEEDED"


class BudgetBusy(ServiceUnavailable):
    """A budget's counter stayed contended past every attempt (not seen in practice)."""

    code = "BUDGET_BUSY"


class BudgetPeriod(StrEnum):
    DAILY = "daily"
    MONTHLY = "monthly"

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The current period: [start, end) in UTC."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self is BudgetPeriod.DAILY:
            return day, day + timedelta(days=1)
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return start, end


@dataclass(frozen=True)
class Budget:
    tenant: str
    project: str | None  # None: the whole tenant
    period: BudgetPeriod
    limit: Decimal
    currency: str
    updated_at: str

    @property
    def scope(self) -> str:
        return f"project:{self.project}" if self.project else f"tenant:{self.tenant}"

    @property
    def row_key(self) -> str:
        return f"{_PROJECT_ROW}{self.project}" if self.project else _TENANT_ROW

    def counter_key(self, now: datetime) -> str:
        """The RowKey of this budget's counter for the period holding `now`."""
        start, _ = self.period.bounds(now)
        return f"use:{self.row_key}:{self.currency}:{self.period.value}:{start:%Y%m%d}"


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    spent: Decimal  # charged in the period, by the ledger
    period_start: str
    period_end: str
    reserved: Decimal = Decimal(0)  # the period's counter

    @property
    def remaining(self) -> Decimal:
        """The limit less the larger of what was spent and what is reserved."""
        return max(self.budget.limit - max(self.spent, self.reserved), Decimal(0))


@dataclass(frozen=True)
class BudgetHold:
    """What one job reserved: `amount` `currency` on each counter of `counters` (RowKeys in
    partition `tenant`). A job row keeps it as `encode()`'s text to release or settle it."""

    tenant: str
    currency: str
    amount: Decimal
    counters: tuple[str, ...]

    def encode(self) -> str:
        return json.dumps(
            {
                "tenant": self.tenant,
                "currency": self.currency,
                "amount": amount(self.amount),
                "counters": list(self.counters),
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str) -> BudgetHold:
        """The hold `encode()` wrote; `ValueError` for any other text."""
        try:
            data = json.loads(text)
            hold = cls(
                tenant=str(data["tenant"]),
                currency=str(data["currency"]),
                amount=Decimal(str(data["amount"])),
                counters=tuple(str(key) for key in data["counters"]),
            )
        except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
            raise ValueError(f"not a budget hold: {text!r}") from exc
        if not hold.counters or not all(key.startswith("use:") for key in hold.counters):
            raise ValueError(f"not a budget hold: {text!r}")
        return hold


class Budgets:
    """Budget rows, their counters, and the holds of jobs against them."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    # -- budget rows ----------------------------------------------------------------------------

    def put(
        self,
        tenant: str,
        project: str | None,
        *,
        period: BudgetPeriod,
        limit: Decimal,
        currency: str,
    ) -> Budget:
        """Set (create or replace) a budget. A changed period or currency starts a counter of
        its own; a changed limit applies to the current period's counter at once."""
        budget = Budget(tenant, project, period, limit, currency, clock.now_iso())
        self._table.upsert_entity(
            entity={
                "PartitionKey": tenant,
                "RowKey": budget.row_key,
                "period": period.value,
                "limit": amount(limit),
                "currency": currency,
                "updated_at": budget.updated_at,
            }
        )
        return budget

    def listed(self, tenant: str | None = None) -> Iterator[Budget]:
        """Every budget of `tenant` (of every tenant when None)."""
        query = _BUDGET_ROWS
        if tenant is not None:
            query = f"PartitionKey eq {literal(tenant)} and {query}"
        for row in self._table.query_entities(query):
            yield _budget(row)

    def applicable(self, tenant: str, project: str, currency: str) -> list[Budget]:
        """The budgets a job of `tenant`'s `project` ("" for none) priced in `currency` is
        held to: the tenant's, then the project's, each only when set in `currency`."""
        keys = [_TENANT_ROW] + ([f"{_PROJECT_ROW}{project}"] if project else [])
        found = [get_or_none(self._table, tenant, key) for key in keys]
        budgets = [_budget(row) for row in found if row is not None]
        return [b for b in budgets if b.currency == currency]

    def reserved(self, budget: Budget, now: datetime) -> Decimal:
        """What `budget`'s counter holds for the period of `now`."""
        return _reserved(get_or_none(self._table, budget.tenant, budget.counter_key(now)))

    # -- holds ----------------------------------------------------------------------------------

    def reserve(
        self, tenant: str, project: str, estimated: Decimal, currency: str, ref: str
    ) -> BudgetHold | None:
        """Hold `estimated` `currency` for job `ref` against every budget that applies.

        Returns None when none applies (no tenant, nothing estimated, no budget of the tenant
        or of `project` in `currency`): there is nothing to release then. Accepts only when,
        for each budget, the period's counter plus `estimated` stays within the limit; raises
        `BudgetExceeded` (403, naming the first budget that refuses) otherwise, having moved
        no counter. `BudgetBusy` (503) when the counters stayed contended past every attempt.
        """
        if not tenant or estimated <= 0:
            return None
        budgets = self.applicable(tenant, project, currency)
        if not budgets:
            return None
        now = clock.utcnow()
        keys = [b.counter_key(now) for b in budgets]

        def attempt(n: int) -> BudgetHold | Lost:
            operations: list[tuple[Any, ...]] = []
            for budget, key in zip(budgets, keys, strict=True):
                row = get_or_none(self._table, tenant, key)
                reserved = _reserved(row)
                if reserved + estimated > budget.limit:
                    raise _exceeded(budget, estimated, reserved)
                counter = {
                    "PartitionKey": tenant,
                    "RowKey": key,
                    "reserved": amount(reserved + estimated),
                }
                if row is None:
                    operations.append(("create", counter))
                else:
                    operations.append(("update", counter, if_match(row.metadata["etag"])))
            if not transact(self._table, operations):
                return LOST
            logger.info("budget: %s %s held for %s on %s", amount(estimated), currency, ref, keys)
            return BudgetHold(tenant, currency, estimated, tuple(keys))

        return until_written(attempt, busy=_busy("submits"), tries=_ATTEMPTS)

    def release(self, hold: BudgetHold, ref: str) -> bool:
        """Give `hold` back for job `ref` (never accepted, or ended before its supplier ran
        it). False when `ref`'s hold was closed already (released or settled): a repeated
        release gives back once. A counter never goes below zero."""
        moves = {key: -hold.amount for key in hold.counters}
        return self._close(hold.tenant, moves, ref, "released")

    def settle(
        self,
        tenant: str,
        project: str,
        cost: Decimal,
        currency: str,
        ref: str,
        hold: BudgetHold | None,
    ) -> bool:
        """Count job `ref`'s charge of `cost` `currency`, once (False when its hold was
        closed already, or when there is nothing to count).

        With `hold`, its counters hold `cost` instead of the estimate from now on (the period
        stays the one the job was accepted in). Without one (a job accepted before holds
        existed), `cost` is added to the current period's counters of the budgets that apply,
        limit or not: it was spent. Raises `ValueError` when `currency` is not `hold`'s.
        """
        if hold is not None:
            if hold.currency != currency:
                raise ValueError(f"hold in {hold.currency}, charge in {currency}")
            moves = {key: cost - hold.amount for key in hold.counters}
            return self._close(hold.tenant, moves, ref, "settled")
        if not tenant or cost <= 0:
            return False
        now = clock.utcnow()
        moves = {b.counter_key(now): cost for b in self.applicable(tenant, project, currency)}
        return bool(moves) and self._close(tenant, moves, ref, "settled")

    def _close(self, tenant: str, moves: Mapping[str, Decimal], ref: str, outcome: str) -> bool:
        """Move each counter of `moves` by its amount, with `ref`'s marker, in one transaction;
        False when the marker exists already."""
        marker_key = "done:" + hashlib.sha256(ref.encode("utf-8")).hexdigest()[:32]
        marker = {"PartitionKey": tenant, "RowKey": marker_key, "ref": ref, "outcome": outcome}

        def attempt(n: int) -> bool | Lost:
            # the marker first: when it exists the whole transaction fails, whatever else did
            operations: list[tuple[Any, ...]] = [("create", marker)]
            for key, delta in moves.items():
                if delta == 0:
                    continue
                row = get_or_none(self._table, tenant, key)
                counter = {
                    "PartitionKey": tenant,
                    "RowKey": key,
                    "reserved": amount(max(_reserved(row) + delta, Decimal(0))),
                }
                if row is not None:
                    operations.append(("update", counter, if_match(row.metadata["etag"])))
                elif delta > 0:
                    operations.append(("create", counter))
            if transact(self._table, operations):
                logger.info("budget: hold of %s %s (%s)", ref, outcome, dict(moves))
                return True
            if get_or_none(self._table, tenant, marker_key) is not None:
                return False
            return LOST

        return until_written(attempt, busy=_busy("changes"), tries=_ATTEMPTS)

    @property
    def _table(self) -> Any:
        return self._storage.table(BUDGETS_TABLE)


def _reserved(row: Mapping[str, Any] | None) -> Decimal:
    if row is None:
        return Decimal(0)
    try:
        return Decimal(str(row["reserved"]))
    except (KeyError, InvalidOperation):
        return Decimal(0)


def _exceeded(budget: Budget, estimated: Decimal, reserved: Decimal) -> BudgetExceeded:
    left = max(budget.limit - reserved, Decimal(0))
    currency = budget.currency
    return BudgetExceeded(
        f"Estimated cost {amount(estimated)} {currency} exceeds the {amount(left)} {currency} "
        f"left of the {budget.period.value} budget of {budget.scope}"
        + (f" ({amount(reserved)} committed to jobs this period)" if reserved else ""),
        extra={
            "scope": budget.scope,
            "estimated_cost": amount(estimated),
            "remaining": amount(left),
            "committed": amount(reserved),
            "currency": currency,
        },
    )


def _budget(row: Mapping[str, Any]) -> Budget:
    rk = str(row["RowKey"])
    try:
        limit = Decimal(str(row["limit"]))
    except InvalidOperation:
        limit = Decimal(0)
    return Budget(
        tenant=str(row["PartitionKey"]),
        project=rk.removeprefix(_PROJECT_ROW) if rk.startswith(_PROJECT_ROW) else None,
        period=BudgetPeriod(str(row["period"])),
        limit=limit,
        currency=str(row["currency"]),
        updated_at=str(row.get("updated_at", "")),
    )


def _busy(what: str) -> Callable[[], BudgetBusy]:
    return lambda: BudgetBusy(f"Too many {what} at once against this budget; retry shortly")
