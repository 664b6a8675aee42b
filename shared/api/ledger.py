"""The ledger: usage rows (JSON pages or FOCUS CSV), chargeback, budgets, evidence bundles.

For enterprise users (their tenant's entries) and the admin key (everyone's); others get 403.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from shared import clock
from shared.errors import ValidationFailed
from shared.http import Auth, Operation, Reply, RequestContext, handle
from shared.ledger import focus
from shared.ledger.models import LedgerEntry
from shared.ledger.service import BudgetPeriod, BudgetStatus, amount
from shared.services import services

bp = func.Blueprint()

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_MAX_RANGE = timedelta(days=366)
LEDGER_ERRORS = (401, 403, 422, 429, 503)


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


def _bounds(period: Period, where: str = "query") -> tuple[str, str]:
    try:
        return period.bounds()
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


USAGE = Operation(
    "GET",
    "/api/v1/ledger/usage",
    "Ledger entries by time, tenant, project and backend; paged JSON or FOCUS CSV",
    UsagePage,
    auth=Auth.USER_OR_ADMIN,
    tag="ledger",
    query=UsageQuery,
    media_types=("application/json", "text/csv"),
    errors=LEDGER_ERRORS,
    description="Enterprise users see their tenant's entries, the admin key everyone's. "
    "`format=csv` exports every matching entry (not paged) in the FinOps Open Cost and Usage "
    "Specification's columns, oldest first.",
)
CHARGEBACK = Operation(
    "GET",
    "/api/v1/ledger/chargeback",
    "Cost grouped by tenant and project over a period",
    Chargeback,
    auth=Auth.USER_OR_ADMIN,
    tag="ledger",
    query=ChargebackQuery,
    errors=LEDGER_ERRORS,
    description="Totals of the ledger's entries per tenant and project (and currency) "
    "between `from` and `to`. Enterprise users see their tenant; the admin key, every tenant.",
)
BUDGETS = Operation(
    "GET",
    "/api/v1/ledger/budgets",
    "Budgets with what was spent in their current period",
    BudgetList,
    auth=Auth.USER_OR_ADMIN,
    tag="ledger",
    errors=LEDGER_ERRORS,
    description="Every budget the caller may see, with its limit, its period and what the ledger "
    "has charged against it in the current period.",
)
PUT_BUDGET = Operation(
    "PUT",
    "/api/v1/ledger/budgets/{scope}",
    "Set the budget of a tenant (`tenant:<id>`) or a project (`project:<name>`)",
    BudgetView,
    body=BudgetRequest,
    auth=Auth.USER_OR_ADMIN,
    tag="ledger",
    errors=(*LEDGER_ERRORS, 413),
    description="A job whose estimated cost exceeds what remains is refused at submit "
    "(403 BUDGET_EXCEEDED) before anything reaches a supplier.",
)


CREATE_EVIDENCE = Operation(
    "POST",
    "/api/v1/ledger/evidence",
    "Make a signed audit evidence bundle of the ledger over a period",
    EvidenceView,
    body=EvidenceRequest,
    status=201,
    auth=Auth.USER_OR_ADMIN,
    tag="ledger",
    errors=(*LEDGER_ERRORS, 413),
    description="The entries, their hash chains, totals and a signature over the whole, stored "
    "in Blob. `python -m shared.ledger.verify bundle.json` checks a downloaded bundle.",
)
GET_EVIDENCE = Operation(
    "GET",
    "/api/v1/ledger/evidence/{evidence_id}",
    "Download an evidence bundle",
    None,
    auth=Auth.USER_OR_ADMIN,
    tag="ledger",
    media_types=("application/json",),
    errors=(401, 403, 404, 429, 503),
    description="The bundle exactly as stored (its SHA-256 is the one given at creation).",
)


@USAGE.route(bp)
def ledger_usage(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, USAGE, usage_page)


@CHARGEBACK.route(bp)
def ledger_chargeback(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CHARGEBACK, chargeback_report)


@BUDGETS.route(bp)
def ledger_budgets(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BUDGETS, _budgets)


@PUT_BUDGET.route(bp)
def ledger_put_budget(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, PUT_BUDGET, _put_budget)


@CREATE_EVIDENCE.route(bp)
def ledger_create_evidence(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CREATE_EVIDENCE, _create_evidence)


@GET_EVIDENCE.route(bp)
def ledger_get_evidence(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, GET_EVIDENCE, _get_evidence)


def _create_evidence(ctx: RequestContext[EvidenceRequest]) -> Reply:
    since, until = _bounds(ctx.body, "body")
    made = services().ledger.create_evidence(ctx.user, since, until, ctx.body.tenant)
    download = f"/api/v1/ledger/evidence/{made.bundle_id}"
    view = EvidenceView(
        evidence_id=made.bundle_id,
        sha256=made.sha256,
        signature=made.signature,
        public_key=made.public_key,
        ephemeral_key=made.ephemeral_key,
        entries=made.entries,
        created_at=made.created_at,
        download=download,
    )
    return Reply(view, headers={"Location": download})


def _get_evidence(ctx: RequestContext[None]) -> Reply:
    data = services().ledger.evidence(ctx.user, ctx.params["evidence_id"])
    return Reply(data.decode("utf-8"), media_type="application/json")


def usage_page(ctx: RequestContext[None]) -> UsagePage | Reply:
    q: UsageQuery = ctx.query
    since, until = _bounds(q)
    ledger = services().ledger
    filters = ledger.visible(ctx.user, q.tenant) | {"since": since, "until": until}
    if q.project is not None:
        filters["project"] = q.project
    if q.backend is not None:
        filters["backend"] = q.backend
    if q.format == "csv":
        entries = sorted(ledger.repo.entries(**filters), key=lambda e: (e.time, e.user_id, e.seq))
        return Reply(
            focus.to_csv(entries),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="qcos-ledger.csv"'},
        )
    entries, next_cursor = ledger.repo.page(q.page_size, q.cursor, **filters)
    return UsagePage(
        entries=[_entry(e) for e in entries], next_cursor=next_cursor, order="user, job id"
    )


def chargeback_report(ctx: RequestContext[None]) -> Chargeback:
    q: ChargebackQuery = ctx.query
    since, until = _bounds(q)
    groups = services().ledger.chargeback(ctx.user, since, until, q.tenant)
    return Chargeback(
        period={"from": since, "to": until}, groups=[ChargebackRow(**g) for g in groups]
    )


def _budgets(ctx: RequestContext[None]) -> BudgetList:
    return BudgetList(budgets=[budget_view(s) for s in services().ledger.budgets(ctx.user)])


def _put_budget(ctx: RequestContext[BudgetRequest]) -> BudgetView:
    body = ctx.body
    status = services().ledger.put_budget(
        ctx.user,
        ctx.params["scope"],
        period=body.period,
        limit=body.limit,
        currency=body.currency,
        tenant=body.tenant,
    )
    return budget_view(status)


def _entry(entry: LedgerEntry) -> EntryView:
    return EntryView(**entry.__dict__)


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
