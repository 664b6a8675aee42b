"""The ledger: usage rows (JSON pages or FOCUS CSV), chargeback, budgets, evidence bundles.

For enterprise users (their tenant's entries) and the admin key (everyone's); others get 403.
"""

from __future__ import annotations

import azure.functions as func

from shared.http import Auth, Operation, Reply, RequestContext, handle
from shared.ledger import focus
from shared.ledger.schemas import (
    BudgetList,
    BudgetRequest,
    BudgetView,
    Chargeback,
    ChargebackQuery,
    EvidenceRequest,
    EvidenceView,
    UsagePage,
    UsageQuery,
    budget_view,
    chargeback_view,
    entry_view,
)
from shared.ledger.service import UsageFilter
from shared.services import services

bp = func.Blueprint()

LEDGER_ERRORS = (401, 403, 422, 429, 503)


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
    since, until = ctx.body.checked_bounds("body")
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
    since, until = q.checked_bounds()
    wanted = UsageFilter(since, until, tenant=q.tenant, project=q.project, backend=q.backend)
    ledger = services().ledger
    if q.format == "csv":
        return Reply(
            focus.to_csv(ledger.usage(ctx.user, wanted)),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="qcos-ledger.csv"'},
        )
    entries, next_cursor = ledger.usage_page(ctx.user, wanted, q.page_size, q.cursor)
    return UsagePage(
        entries=[entry_view(e) for e in entries], next_cursor=next_cursor, order="user, job id"
    )


def chargeback_report(ctx: RequestContext[None], project: str | None = None) -> Chargeback:
    q: ChargebackQuery = ctx.query
    since, until = q.checked_bounds()
    groups = services().ledger.chargeback(ctx.user, since, until, q.tenant, project)
    return chargeback_view(since, until, groups)


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
