"""The caller's jobs (`GET /api/v1/jobs`), and the paths the vendor's Python client
(softqcos-sdk 3.13) calls, served as doors of the operations we already have.

A door takes the client's request as the client sends it (`backend_id` for `backend`, the
ledger's `start_date`/`end_date`, a batch of `{circuit, backend, shots}`), converts it to the
operation's own request, and answers what the operation answers. Doors under `/api/v1` answer
as v1 does (no `success`/`data` envelope), doors under `/api/v2` as v2 does. The client's other
areas (chemistry, QEC, teleportation, marketplace, its evidence format...) are another product
and are not served.
"""

from __future__ import annotations

import asyncio
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import ValidationError

from shared.api import health as health_api
from shared.api import jobs as jobs_api
from shared.api import ledger as ledger_api
from shared.api import network as network_api
from shared.api import suppliers as suppliers_api
from shared.http import Operation, Reply, RequestContext, handle, handle_async, validation_error
from shared.jobs.schemas import (
    SDK_BACKEND,
    JobList,
    JobListQuery,
    RuntimeJobListQuery,
    RuntimeJobRequest,
)
from shared.ledger.schemas import (
    BudgetCreateRequest,
    BudgetView,
    Chargeback,
    ChargebackReportQuery,
    UsageReportQuery,
    budget_view,
)
from shared.network.schemas import (
    BatchListQuery,
    BatchResultsQuery,
    RuntimeEstimateRequest,
    SdkBatchRequest,
    SupplierEstimateQuery,
)
from shared.orchestration.client import DurableOrchestrations
from shared.pricing.listing import providers
from shared.services import services
from shared.suppliers.catalog import supplier

bp = df.Blueprint()

SDK = "softqcos-sdk 3.13"

# -- the caller's jobs ----------------------------------------------------------------------------

LIST = Operation(
    "GET",
    "/api/v1/jobs",
    "Your jobs, newest first",
    JobList,
    query=JobListQuery,
    errors=(401, 404, 422, 429, 503),
    description="v1 jobs (circuits, supplier jobs, reranks) and v2 network jobs and batches, "
    "yours only, newest first, `limit` a page (at most 100) and `next_cursor` for the next "
    "one. Filter by `status`, `backend` (404 BACKEND_NOT_FOUND for an unknown one) and "
    "`type`. Each job says where to read it (`location`).",
)


@LIST.route(bp)
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LIST, lambda ctx: _listed(ctx, ctx.query))


def _listed(ctx: RequestContext[Any], query: JobListQuery) -> JobList:
    return services().listing.page(ctx.user.user_id, query)


def _list_query(given: dict[str, Any]) -> JobListQuery:
    """A listing's query from a door's (its values checked as the listing checks them)."""
    try:
        return JobListQuery.model_validate(given)
    except ValidationError as exc:  # each error named, as the door's own query's would be
        raise validation_error(exc, where="query") from None


# -- the doors ------------------------------------------------------------------------------------


def _door(op: Operation, path: str, note: str = "", **changes: Any) -> Operation:
    """`op` at `path` too, as the vendor's client calls it, under the `compat` tag."""
    why = f"The path {SDK} calls for `{op.method} {op.path}`{note}."
    return op.door(path, why, tag="compat", **changes)


def _v1_door(op: Operation, path: str, note: str = "", **changes: Any) -> Operation:
    """A v2 operation's door under `/api/v1`: answered as v1 answers, without the envelope."""
    note = f"{note}; answered without v2's `success`/`data` envelope"
    return _door(op, path, note, envelope=False, **changes)


_CONVERTED = "; it takes the client's request and converts it"

RUNTIME_SUBMIT = _door(
    jobs_api.EXECUTE,
    "/api/v1/runtime/jobs",
    f"{_CONVERTED}: `backend_id` (default {SDK_BACKEND}) picks the local simulator or a "
    "supplier's backend",
    body=RuntimeJobRequest,
    errors=(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
RUNTIME_LIST = _door(
    LIST, "/api/v1/runtime/jobs", " (`backend_id` for `backend`)", query=RuntimeJobListQuery
)
RUNTIME_STATUS = _door(jobs_api.STATUS, "/api/v1/runtime/jobs/{job_id}")
RUNTIME_CANCEL = _door(jobs_api.CANCEL, "/api/v1/runtime/jobs/{job_id}")
RUNTIME_ESTIMATE = _v1_door(
    network_api.ESTIMATE,
    "/api/v1/runtime/estimate",
    f"{_CONVERTED} (one backend, `backend_id`)",
    body=RuntimeEstimateRequest,
    errors=(400, 401, 404, 413, 422, 429, 503),
)
RUNTIME_BACKENDS = _v1_door(network_api.BACKENDS, "/api/v1/runtime/backends")
BACKENDS = _v1_door(network_api.BACKENDS, "/api/v1/backends")
BACKEND = _v1_door(network_api.BACKEND, "/api/v1/backends/{backend_id}")
NETWORK_STATUS = _v1_door(network_api.STATUS, "/api/v1/network/status")
NETWORK_TOPOLOGY = _v1_door(network_api.TOPOLOGY, "/api/v1/network/topology")
NETWORK_BACKENDS = _v1_door(network_api.BACKENDS, "/api/v1/network/backends")
SUPPLIER_ESTIMATE = _v1_door(
    network_api.ESTIMATE,
    "/api/v1/{supplier}/estimate",
    f"{_CONVERTED}: the circuit, `backend`/`target`/`device` and `shots` as query "
    "parameters, one backend of that supplier (404 SUPPLIER_NOT_FOUND, BACKEND_NOT_FOUND)",
    body=None,
    query=SupplierEstimateQuery,
    errors=(400, 401, 404, 422, 429, 503),
)
BRAKET_BACKENDS = _door(suppliers_api.BRAKET_DEVICES, "/api/v1/braket/backends")
AZURE_TARGETS = _door(suppliers_api.PROVIDERS, "/api/v1/azure_quantum/targets")
AZURE_BACKENDS = _door(suppliers_api.PROVIDERS, "/api/v1/azure_quantum/backends")
NETWORK_HEALTH = _door(health_api.HEALTH, "/api/v1/network/health")
SUPPLIER_STATUS = _door(
    jobs_api.STATUS,
    "/api/v1/{supplier}/status/{job_id}",
    " (404 SUPPLIER_NOT_FOUND for an unknown supplier)",
)
SUPPLIER_CANCEL = _door(
    jobs_api.CANCEL,
    "/api/v1/{supplier}/jobs/{job_id}",
    " (404 SUPPLIER_NOT_FOUND for an unknown supplier)",
)
LEDGER_USAGE = _door(
    ledger_api.USAGE,
    "/api/v1/ledger/reports/usage",
    " (`start_date`, `end_date`, `tenant_id`, `project_id` for `from`, `to`, `tenant`, `project`)",
    query=UsageReportQuery,
)
LEDGER_CHARGEBACK = _door(
    ledger_api.CHARGEBACK,
    "/api/v1/ledger/reports/chargeback",
    " as a POST with query parameters (`start_date`, `end_date`, `tenant_id`; `project_id` "
    "keeps one project's groups)",
    method="POST",
    query=ChargebackReportQuery,
)
LEDGER_BUDGET = _door(
    ledger_api.PUT_BUDGET,
    "/api/v1/ledger/budgets",
    f" as a POST{_CONVERTED}: `limit_usd` sets a USD budget of your tenant, or of `project_id`",
    method="POST",
    body=BudgetCreateRequest,
)
BATCH_SUBMIT = _door(
    network_api.BATCH,
    "/api/v2/batch",
    f"{_CONVERTED}: its jobs' circuits, on their one backend",
    body=SdkBatchRequest,
)
BATCH_LIST = _door(
    LIST,
    "/api/v2/batch",
    " (its batches only), enveloped as v2 answers",
    query=BatchListQuery,
    envelope=True,
)
BATCH_STATUS = _door(network_api.JOB, "/api/v2/batch/{job_id}")
BATCH_RESULTS = _door(
    network_api.JOB,
    "/api/v2/batch/{job_id}/results",
    " (`include_failed=false` leaves out the circuits that failed)",
    query=BatchResultsQuery,
)
BATCH_CANCEL = _door(network_api.CANCEL, "/api/v2/batch/{job_id}/cancel", method="POST")


@RUNTIME_SUBMIT.route(bp)
def sdk_submit(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, RUNTIME_SUBMIT, _submit, existing=_submitted)


@RUNTIME_LIST.route(bp)
def sdk_list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, RUNTIME_LIST, lambda ctx: _listed(ctx, _list_query(ctx.query.listing())))


@RUNTIME_STATUS.route(bp)
def sdk_job(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, RUNTIME_STATUS, _status)


@RUNTIME_CANCEL.route(bp)
def sdk_cancel(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, RUNTIME_CANCEL, _cancel)


@RUNTIME_ESTIMATE.route(bp)
def sdk_estimate(req: func.HttpRequest) -> func.HttpResponse:
    return handle(
        req,
        RUNTIME_ESTIMATE,
        lambda ctx: services().network.estimate(ctx.user, ctx.body.as_estimate()),
    )


@RUNTIME_BACKENDS.route(bp)
def sdk_runtime_backends(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, RUNTIME_BACKENDS, lambda ctx: services().network.backends())


@BACKENDS.route(bp)
def sdk_backends(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BACKENDS, lambda ctx: services().network.backends())


@BACKEND.route(bp)
def sdk_backend(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BACKEND, lambda ctx: services().network.backend(ctx.params["backend_id"]))


@NETWORK_STATUS.route(bp)
def sdk_network_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, NETWORK_STATUS, lambda ctx: services().network.status())


@NETWORK_TOPOLOGY.route(bp)
def sdk_network_topology(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, NETWORK_TOPOLOGY, lambda ctx: services().network.topology())


@NETWORK_BACKENDS.route(bp)
def sdk_network_backends(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, NETWORK_BACKENDS, lambda ctx: services().network.backends())


@SUPPLIER_ESTIMATE.route(bp)
def sdk_supplier_estimate(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, SUPPLIER_ESTIMATE, _supplier_estimate)


@BRAKET_BACKENDS.route(bp)
def sdk_braket_backends(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BRAKET_BACKENDS, lambda ctx: services().suppliers.braket_devices())


@AZURE_TARGETS.route(bp)
def sdk_azure_targets(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, AZURE_TARGETS, lambda ctx: providers("azure_quantum"))


@AZURE_BACKENDS.route(bp)
def sdk_azure_backends(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, AZURE_BACKENDS, lambda ctx: providers("azure_quantum"))


@NETWORK_HEALTH.route(bp)
def sdk_network_health(req: func.HttpRequest) -> func.HttpResponse:
    return health_api.health(req)


@SUPPLIER_STATUS.route(bp)
def sdk_supplier_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, SUPPLIER_STATUS, lambda ctx: _status(_known_supplier(ctx)))


@SUPPLIER_CANCEL.route(bp)
def sdk_supplier_cancel(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, SUPPLIER_CANCEL, lambda ctx: _cancel(_known_supplier(ctx)))


@LEDGER_USAGE.route(bp)
def sdk_ledger_usage(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LEDGER_USAGE, ledger_api.usage_page)


@LEDGER_CHARGEBACK.route(bp)
def sdk_ledger_chargeback(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LEDGER_CHARGEBACK, _chargeback)


@LEDGER_BUDGET.route(bp)
def sdk_ledger_budget(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LEDGER_BUDGET, _budget)


@BATCH_SUBMIT.route(bp)
@bp.durable_client_input(client_name="client")
async def sdk_batch_submit(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    orchestrations = DurableOrchestrations(client, asyncio.get_running_loop())

    def submit(ctx: RequestContext[SdkBatchRequest]) -> Any:
        batch = ctx.body.as_batch()
        return _batch_accepted(services().network.execute_batch(ctx.user, batch, orchestrations))

    return await handle_async(req, BATCH_SUBMIT, submit)


@BATCH_LIST.route(bp)
def sdk_batch_list(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BATCH_LIST, lambda ctx: _listed(ctx, _list_query(ctx.query.listing())))


@BATCH_STATUS.route(bp)
def sdk_batch_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(
        req, BATCH_STATUS, lambda ctx: services().network.get(ctx.user, ctx.params["job_id"])
    )


@BATCH_RESULTS.route(bp)
def sdk_batch_results(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BATCH_RESULTS, _batch_results)


@BATCH_CANCEL.route(bp)
@bp.durable_client_input(client_name="client")
async def sdk_batch_cancel(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    orchestrations = DurableOrchestrations(client, asyncio.get_running_loop())

    def cancel(ctx: RequestContext[None]) -> dict[str, Any]:
        return services().network.cancel(ctx.user, ctx.params["job_id"], orchestrations)

    return await handle_async(req, BATCH_CANCEL, cancel)


# -- conversions ----------------------------------------------------------------------------------


def _runtime_location(job_id: str) -> str:
    return f"/api/v1/runtime/jobs/{job_id}"


def _submit(ctx: RequestContext[RuntimeJobRequest]) -> Reply:
    """The circuit on `backend_id`: the local simulator's queue, or a supplier's backend."""
    accepted = services().jobs.submit_to_backend(ctx.user, ctx.body)
    return jobs_api.accepted_reply(accepted, _runtime_location(accepted.job_id))


def _submitted(ctx: RequestContext[RuntimeJobRequest], job_id: str) -> Reply:
    """`_submit`'s answer for the job an earlier attempt made (NotFound: none)."""
    accepted = services().jobs.accepted(ctx.user, job_id)
    return jobs_api.accepted_reply(accepted, _runtime_location(job_id))


def _status(ctx: RequestContext[None]) -> Any:
    return services().jobs.status(ctx.user, ctx.params["job_id"])


def _cancel(ctx: RequestContext[None]) -> Any:
    return services().jobs.cancel(ctx.user, ctx.params["job_id"])


def _supplier_estimate(ctx: RequestContext[None]) -> Any:
    q: SupplierEstimateQuery = ctx.query
    return services().network.estimate(ctx.user, q.as_estimate(ctx.params["supplier"]))


def _known_supplier(ctx: RequestContext[None]) -> RequestContext[None]:
    """`ctx`, once its `supplier` is known (`NotFound` SUPPLIER_NOT_FOUND otherwise)."""
    supplier(ctx.params["supplier"])
    return ctx


def _chargeback(ctx: RequestContext[None]) -> Chargeback:
    return ledger_api.chargeback_report(ctx, project=ctx.query.project_id)


def _budget(ctx: RequestContext[BudgetCreateRequest]) -> BudgetView:
    body = ctx.body
    status = services().ledger.put_usd_budget(
        ctx.user,
        period=body.period,
        limit=body.limit_usd,
        tenant=body.tenant_id,
        project=body.project_id,
    )
    return budget_view(status)


def _batch_accepted(outcome: Any) -> Any:
    """The network batch's answer, its `Location` at this door."""
    reply = network_api._accepted(outcome)
    if isinstance(reply, Reply):
        reply.headers["Location"] = f"/api/v2/batch/{outcome.job_id}"
    return reply


def _batch_results(ctx: RequestContext[None]) -> dict[str, Any]:
    job_id = ctx.params["job_id"]
    return services().network.get(ctx.user, job_id, include_failed=ctx.query.include_failed)
