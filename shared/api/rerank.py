"""`/rerank`: choose k candidates relevant to a query and not redundant, on the job queue."""

from __future__ import annotations

import azure.functions as func

from shared.api.jobs import accepted_reply
from shared.http import Operation, Reply, RequestContext, handle
from shared.jobs.schemas import JobAccepted, JobCancelled
from shared.rerank.schemas import RerankJob, RerankRequest
from shared.rerank.service import KIND
from shared.services import services

bp = func.Blueprint()

SUBMIT = Operation(
    "POST",
    "/rerank",
    "Queue a rerank",
    JobAccepted,
    body=RerankRequest,
    idempotent=True,
    status=202,
    errors=(400, 401, 403, 409, 413, 422, 429, 503),
    tag="rerank",
    description="Chooses `k` of the candidates maximising their total relevance to the query "
    "minus `diversity` times their pairwise similarity, on the tier's solver: `classic` (exact "
    "or greedy plus local search), `quantum_cpu` (QAOA on Aer) or `quantum_gpu` (Aer's GPU "
    "device, or the CPU with `fallback: true` where there is none). Counts as one job of your "
    "daily quota. Poll `Location` (`/rerank/{job_id}`).",
)
GET = Operation(
    "GET",
    "/rerank/{job_id}",
    "A rerank's status and result",
    RerankJob,
    errors=(401, 404, 503),
    tag="rerank",
    description="The k chosen candidates, rank 1 first, once completed, and what the solver "
    "did: method, device, qubits, circuit depth, shots, optimiser iterations, the objective "
    "reached and, when it can be computed, the exact optimum and their ratio.",
)
CANCEL = Operation(
    "DELETE",
    "/rerank/{job_id}",
    "Cancel a queued rerank",
    JobCancelled,
    errors=(401, 404, 409, 503),
    tag="rerank",
    description="A rerank that is running or finished answers 409 JOB_NOT_CANCELLABLE.",
)


@SUBMIT.route(bp)
def rerank(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, SUBMIT, _submit, existing=_submitted)


@GET.route(bp)
def rerank_job(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, GET, lambda ctx: services().rerank.get(ctx.user, ctx.params["job_id"]))


@CANCEL.route(bp)
def cancel_rerank(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CANCEL, lambda ctx: services().rerank.cancel(ctx.user, ctx.params["job_id"]))


def _submit(ctx: RequestContext[RerankRequest]) -> Reply:
    accepted = services().rerank.submit(ctx.user, ctx.body)
    return Reply(accepted, headers={"Location": f"/rerank/{accepted.job_id}"})


def _submitted(ctx: RequestContext[RerankRequest], job_id: str) -> Reply:
    """`_submit`'s answer for the rerank `job_id` an earlier attempt made (NotFound: none)."""
    return accepted_reply(services().jobs.accepted(ctx.user, job_id, KIND), f"/rerank/{job_id}")
