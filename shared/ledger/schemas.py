"""Request and response models of the ledger API (`/api/v1/ledger/...`), and the names
softqcos-sdk's `client.ledger` gives the same requests (the OpenAPI spec is generated from these).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from shared import clock
from shared.errors import ValidationFailed
from shared.ledger.budgets import BudgetPeriod, BudgetStatus
from shared.ledger.models import LedgerEntry, amount

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_MAX_RANGE = timedelta(days=366)

_INSTANT_FORMAT = (
    "Input should be an ISO 8601 date-time with a time zone, such as 2026-01-31T00:00:00Z, "
    "or a date, such as 2026-01-31"
)

# A `+` sent unencoded in a query string arrives as a space: 2026-01-31T00:00:00 01:00
_PLUS_AS_SPACE = re.compile(r"^(\S+T[0-9:.,]+) ([0-9]{2}(?::?[0-9]{2})?)$")


def _instant(value: str | None) -> str | None:
    """An ISO 8601 time (a date means its midnight UTC), in the ledger's own format; a space
    before the offset is read as the `+` it was in the URL. A time outside the years 1 to 9999
    once in UTC (9999-12-31T23:00:00-05:00) is the nearest one inside them: no entry lies
    beyond. Anything else is refused, with the format expected and without quoting it."""
    if value is None:
        return None
    text = _PLUS_AS_SPACE.sub(r"\1+\2", value.strip())
    if len(text) == 10:
        text += "T00:00:00Z"
    try:
        moment = clock.parse_iso(text)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        # the error's location names the parameter: "from: Input should be ..."
        raise PydanticCustomError("datetime_format", _INSTANT_FORMAT)
    return clock.iso(clock.to_utc_clamped(moment))


_EDGES = (
    "A time before 0001-01-01T00:00:00Z or after 9999-12-31T23:59:59.999Z (once in UTC) counts "
    "as that limit."
)


class Period(BaseModel):
    """[from, to): by default the last 30 days."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    since: str | None = Field(
        None,
        alias="from",
        description="Start, ISO 8601 with a time zone, or a date (its midnight UTC); inclusive; "
        f"default 30 days before `to`. {_EDGES}",
    )
    until: str | None = Field(
        None,
        alias="to",
        description="End, ISO 8601 with a time zone, or a date (its midnight UTC); exclusive; "
        f"default now. {_EDGES}",
    )

    _times = field_validator("since", "until")(_instant)

    def bounds(self) -> tuple[str, str]:
        until = self.until or clock.now_iso()
        since = self.since or clock.iso(
            clock.minus_clamped(clock.parse_iso(until), timedelta(days=30))
        )
        if since >= until:
            raise ValueError("`from` must be before `to`")
        if clock.parse_iso(until) - clock.parse_iso(since) > _MAX_RANGE:
            raise ValueError("a period spans at most 366 days")
        return since, until

    def checked_bounds(self, where: str = "query") -> tuple[str, str]:
        """`bounds()`, a refusal raised as `ValidationFailed` naming `where` the period was
        given (`query` or `body`)."""
        try:
            return self.bounds()
        except ValueError as exc:
            raise ValidationFailed(f"{where}: {exc}") from None


class UsageQuery(Period):
    tenant: str | None = Field(None, pattern=NAME_PATTERN, description="Only this tenant's entries")
    project: str | None = Field(None, max_length=256, description="Only this project's entries")
    backend: str | None = Field(None, max_length=100, description="Only this backend's entries")
    page_size: int = Field(100, ge=1, le=1000, description="Entries per page (JSON)")
    cursor: str | None = Field(None, max_length=2000, description="`next_cursor` of a page")
    format: str = Field("json", pattern="^(json|csv)$", description="`csv`: FOCUS columns")


class ChargebackQuery(Period):
    tenant: str | None = Field(None, pattern=NAME_PATTERN, description="Only this tenant")


class EntryView(BaseModel):
    job_id: str
    user_id: str
    seq: int
    time: str
    tenant: str
    project: str
    supplier: str
    backend: str
    mode: str = Field(description="local, emulated or cloud")
    shots: int
    cost: str = Field(description="Charged (decimal text); 0 unless a supplier's device ran it")
    currency: str = Field(examples=["USD"])
    list_cost: str = Field(description="What the backend's device costs by the price book")
    price_source: str
    prev_hash: str
    hash: str


class UsagePage(BaseModel):
    entries: list[EntryView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
    order: str = Field(description="Storage order: by user, then job id")


class ChargebackRow(BaseModel):
    tenant: str
    project: str
    currency: str
    jobs: int
    shots: int
    cost: str
    list_cost: str


class Chargeback(BaseModel):
    period: dict[str, str]
    groups: list[ChargebackRow]


class BudgetRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"period": "monthly", "limit": "500.00"}]},
    )

    period: BudgetPeriod = Field(description="daily or monthly (UTC)")
    limit: Decimal = Field(ge=0, le=Decimal("1e9"), decimal_places=2, description="The budget")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217, or HQC")
    tenant: str | None = Field(
        None, pattern=NAME_PATTERN, description="Admin only: the tenant of a `project:` budget"
    )


class BudgetView(BaseModel):
    scope: str = Field(examples=["tenant:acme", "project:vqe-study"])
    tenant: str
    period: BudgetPeriod
    limit: str
    currency: str
    spent: str = Field(description="Charged in the current period, by the ledger")
    reserved: str = Field(
        description="Held by cloud jobs accepted in the current period: their estimates, "
        "or their costs once charged"
    )
    remaining: str = Field(description="The limit less the larger of `spent` and `reserved`")
    period_start: str
    period_end: str
    updated_at: str


class BudgetList(BaseModel):
    budgets: list[BudgetView]


class EvidenceRequest(Period):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"from": "2026-11-01", "to": "2026-12-01"}]},
    )

    since: str = Field(
        alias="from",
        description=f"Start, ISO 8601 with a time zone, or a date; inclusive. {_EDGES}",
    )
    until: str = Field(
        alias="to", description=f"End, ISO 8601 with a time zone, or a date; exclusive. {_EDGES}"
    )
    tenant: str | None = Field(None, pattern=NAME_PATTERN, description="Only this tenant's entries")


class EvidenceView(BaseModel):
    evidence_id: str
    sha256: str = Field(description="Of the stored bundle's bytes (what GET returns)")
    signature: str = Field(description="Ed25519 over the bundle without its signature, base64")
    public_key: str = Field(description="The signing key's public half, base64")
    ephemeral_key: bool = Field(
        description="True: signed with a key made at start (QCOS_LEDGER_SIGNING_KEY unset)"
    )
    entries: int
    created_at: str
    download: str = Field(description="Where to GET the bundle")


# -- the same requests as softqcos-sdk's `client.ledger` sends them ------------------------------


class UsageReportQuery(UsageQuery):
    """`client.ledger.usage`'s names for the ledger's usage filters."""

    since: str | None = Field(
        None, alias="start_date", description="`from`: start (a date or ISO 8601), inclusive"
    )
    until: str | None = Field(
        None, alias="end_date", description="`to`: end (a date or ISO 8601), exclusive"
    )
    tenant: str | None = Field(
        None, alias="tenant_id", pattern=NAME_PATTERN, description="Only this tenant"
    )
    project: str | None = Field(
        None, alias="project_id", max_length=256, description="Only this project"
    )


class ChargebackReportQuery(ChargebackQuery):
    """`client.ledger.chargeback`'s query parameters."""

    since: str | None = Field(None, alias="start_date", description="Start, inclusive")
    until: str | None = Field(None, alias="end_date", description="End, exclusive")
    tenant: str | None = Field(
        None, alias="tenant_id", pattern=NAME_PATTERN, description="Only this tenant"
    )
    project_id: str | None = Field(None, max_length=256, description="Only this project")


class BudgetCreateRequest(BaseModel):
    """What `client.ledger.budget_create` sends: a budget for your tenant or one project."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"limit_usd": 500, "period": "monthly"}]},
    )

    limit_usd: Decimal = Field(ge=0, le=Decimal("1e9"), decimal_places=2, description="In USD")
    period: BudgetPeriod = Field(BudgetPeriod.MONTHLY, description="daily or monthly (UTC)")
    tenant_id: str | None = Field(
        None, pattern=NAME_PATTERN, description="Your tenant (the admin: any tenant)"
    )
    project_id: str | None = Field(
        None, pattern=NAME_PATTERN, description="A project of the tenant: its own budget"
    )


# -- converters -----------------------------------------------------------------------------------


def entry_view(entry: LedgerEntry) -> EntryView:
    return EntryView(**entry.__dict__)


def chargeback_view(since: str, until: str, groups: list[dict[str, Any]]) -> Chargeback:
    return Chargeback(
        period={"from": since, "to": until}, groups=[ChargebackRow(**g) for g in groups]
    )


def budget_view(status: BudgetStatus) -> BudgetView:
    budget = status.budget
    return BudgetView(
        scope=budget.scope,
        tenant=budget.tenant,
        period=budget.period,
        limit=amount(budget.limit),
        currency=budget.currency,
        spent=amount(status.spent),
        reserved=amount(status.reserved),
        remaining=amount(status.remaining),
        period_start=status.period_start,
        period_end=status.period_end,
        updated_at=budget.updated_at,
    )
