"""The v1 job API: execute, status, results, cancel, execute-sync; and the paths the published
QCOS Python client (qcos-sdk 2.1) calls, as aliases of the v1 operations."""

from __future__ import annotations

import azure.functions as func

from shared.http import Operation, Reply, RequestContext, handle
from shared.jobs.schemas import (
    ExecuteRequest,
    JobAccepted,
    JobCancelled,
    JobResults,
    JobStatusResponse,
    SyncResult,
)
from shared.services import services

bp = func.Blueprint()

EXECUTE = Operation(
    "POST",
    "/api/v1/execute",
    "Queue a circuit",
    JobAccepted,
    body=ExecuteRequest,
    idempotent=True,
    status=202,
    errors=(400, 401, 403, 409, 413, 422, 429, 503),
    description="Validates the circuit against your tier's limits, stores it and queues it for "
    "the Aer simulator. Poll `Location` (`/api/v1/status/{job_id}`).",
)
STATUS = Operation(
    "GET",
    "/api/v1/status/{job_id}",
    "A job's status",
    JobStatusResponse,
    errors=(401, 404, 503),
    description="Status, timestamps, the counts once completed and the error once failed.",
)
RESULTS = Operation(
    "GET",
    "/api/v1/results/{job_id}",
    "A completed job's results",
    JobResults,
    errors=(401, 404, 409, 503),
    description="Counts and execution metadata; 409 JOB_NOT_COMPLETE until the job completes.",
)
CANCEL = Operation(
    "DELETE",
    "/api/v1/jobs/{job_id}",
    "Cancel a queued or running job",
    JobCancelled,
    errors=(401, 404, 409, 503),
    description="A cancelled job is never charged: a queued one never runs, a running one is "
    "stopped within about a second (a supplier's task is cancelled at the supplier). A "
    "finished job answers 409 JOB_NOT_CANCELLABLE.",
)
EXECUTE_SYNC = Operation(
    "POST",
    "/execute-sync",
    "Run a circuit and wait for its counts",
    SyncResult,
    body=ExecuteRequest,
    idempotent=True,
    errors=(400, 401, 403, 409, 413, 422, 429, 503),
    description="Runs the circuit in the request and answers with its counts (the run is also "
    "recorded as a job). Past the sync bound it answers 202 with the job to poll.",
)


def _client_alias(op: Operation, path: str) -> Operation:
    """`op` served at `path` too: the same contract, documented under the `compat` tag."""
    return op.door(
        path,
        f"The path the QCOS Python client (qcos-sdk 2.1) calls: `{op.path}` without the "
        "`/api/v1` prefix, with the same request and answer.",
        tag="compat",
    )


CLIENT_EXECUTE = _client_alias(EXECUTE, "/execute")
CLIENT_STATUS = _client_alias(STATUS, "/status/{job_id}")
CLIENT_RESULTS = _client_alias(RESULTS, "/results/{job_id}")


@EXECUTE.route(bp)
def execute(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, EXECUTE, _submit, existing=_submitted)


@CLIENT_EXECUTE.route(bp)
def client_execute(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CLIENT_EXECUTE, _submit, existing=_submitted)


@STATUS.route(bp)
def job_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, STATUS, _status)


@CLIENT_STATUS.route(bp)
def client_job_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CLIENT_STATUS, _status)


@RESULTS.route(bp)
def job_results(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, RESULTS, _results)


@CLIENT_RESULTS.route(bp)
def client_job_results(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CLIENT_RESULTS, _results)


@CANCEL.route(bp)
def cancel_job(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CANCEL, lambda ctx: services().jobs.cancel(ctx.user, ctx.params["job_id"]))


@EXECUTE_SYNC.route(bp)
def execute_sync(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, EXECUTE_SYNC, _run_sync, existing=_ran)


def _location(job_id: str) -> dict[str, str]:
    return {"Location": f"/api/v1/status/{job_id}"}


def _status(ctx: RequestContext[None]) -> JobStatusResponse:
    return services().jobs.status(ctx.user, ctx.params["job_id"])


def _results(ctx: RequestContext[None]) -> JobResults:
    return services().jobs.results(ctx.user, ctx.params["job_id"])


def _submit(ctx: RequestContext[ExecuteRequest]) -> Reply:
    accepted = services().jobs.submit(ctx.user, ctx.body)
    return Reply(accepted, headers=_location(accepted.job_id))


def _run_sync(ctx: RequestContext[ExecuteRequest]) -> SyncResult | Reply:
    outcome = services().jobs.execute_sync(ctx.user, ctx.body)
    if isinstance(outcome, JobAccepted):
        return Reply(outcome, status=202, headers=_location(outcome.job_id))
    return outcome


def _submitted(ctx: RequestContext[ExecuteRequest], job_id: str) -> Reply:
    """`_submit`'s answer for its job `job_id`, made by an earlier attempt: 202, as it stands
    now. Raises `NotFound` when there is no such job."""
    return accepted_reply(services().jobs.accepted(ctx.user, job_id))


def _ran(ctx: RequestContext[ExecuteRequest], job_id: str) -> SyncResult | Reply:
    """`_run_sync`'s answer for its job `job_id`, made by an earlier attempt: the counts once
    completed, else 202 with the job to poll. Raises `NotFound` when there is no such job."""
    outcome = services().jobs.ran(ctx.user, job_id)
    if isinstance(outcome, JobAccepted):
        return accepted_reply(outcome)
    return outcome


def accepted_reply(accepted: JobAccepted, location: str | None = None) -> Reply:
    """202 with the job to poll at `location` (its v1 status by default)."""
    headers = {"Location": location} if location else _location(accepted.job_id)
    return Reply(accepted, status=202, headers=headers)
