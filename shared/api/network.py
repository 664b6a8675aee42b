"""The v2 network API (`/api/v2/network/...`): routing, fan-out, batches, backends, estimates.

Answers are enveloped: `{"success": true, "data": ...}`, and errors carry `"success": false`.
The functions that start or stop orchestrations take a durable client and are async; their
pipeline runs in a worker thread (`handle_async`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel

from shared.http import Operation, Reply, RequestContext, handle, handle_async
from shared.network.schemas import (
    AggregateRequest,
    AggregateResult,
    AggregationMethods,
    BackendInfo,
    BackendList,
    CalibrationInfo,
    EstimateRequest,
    EstimateResult,
    Metrics,
    NetworkBatchRequest,
    NetworkExecuteRequest,
    NetworkJobCancelled,
    NetworkJobResult,
    NetworkStatus,
    QueueInfo,
    Topology,
)
from shared.network.service import Accepted
from shared.orchestration.client import DurableOrchestrations
from shared.services import services

bp = df.Blueprint()

_BASE = "/api/v2/network"


def _op(method: str, path: str, summary: str, response: type[BaseModel], **kw: Any) -> Operation:
    return Operation(method, _BASE + path, summary, response, tag="network", envelope=True, **kw)


EXECUTE = _op(
    "POST",
    "/execute",
    "Run a circuit on the network",
    NetworkJobResult,
    body=NetworkExecuteRequest,
    idempotent=True,
    errors=(400, 403, 404, 413, 422, 500, 503),
    description="Routes the circuit by `strategy` (fastest, best_fidelity, round_robin, "
    "cost_optimized, ordered, all) and waits a bounded time: 200 with the counts (strategy "
    "all: every backend's counts and their aggregate), or 202 with the job to poll.",
)
BATCH = _op(
    "POST",
    "/execute/batch",
    "Run a batch of circuits",
    NetworkJobResult,
    body=NetworkBatchRequest,
    idempotent=True,
    errors=(400, 403, 404, 413, 422, 503),
    description="Each circuit routed by the strategy; every run in one orchestration.",
)
JOB = _op(
    "GET",
    "/execute/{job_id}",
    "A network job's status and results",
    NetworkJobResult,
    errors=(404, 503),
    description="The job's state, its backends' runs and, once finished, their counts and "
    "the aggregate (strategy all) or the chosen backend's counts.",
)
CANCEL = _op(
    "DELETE",
    "/execute/{job_id}",
    "Cancel a network job",
    NetworkJobCancelled,
    errors=(404, 409, 503),
    description="Terminates the orchestration and cancels every run not yet finished (cloud "
    "tasks at their supplier); runs that never ran are never charged.",
)
BACKENDS = _op(
    "GET",
    "/backends",
    "Every backend of every supplier",
    BackendList,
    description="The catalog routing chooses from: each backend's supplier, provider, qubits, "
    "native gates, status, queue depth, price-book entry, and mode (local, emulated or cloud).",
)
BACKEND = _op(
    "GET",
    "/backends/{backend_id}",
    "One backend",
    BackendInfo,
    errors=(404,),
    description="One entry of `/backends` by its id; 404 BACKEND_NOT_FOUND for an unknown id.",
)
CALIBRATION = _op(
    "GET",
    "/backends/{backend_id}/calibration",
    "A backend's calibration",
    CalibrationInfo,
    errors=(404,),
    description="Per qubit T1, T2 and readout error, per gate error and duration, with the "
    "snapshot or data file they come from (the ones its emulation uses).",
)
QUEUE = _op(
    "GET",
    "/backends/{backend_id}/queue",
    "A backend's queue",
    QueueInfo,
    errors=(404,),
    description="This gateway's open jobs on the backend and the estimated wait, with what "
    "the figure counts.",
)
STATUS = _op(
    "GET",
    "/status",
    "The network's status",
    NetworkStatus,
    description="Overall status (operational, degraded or down), the qubits of the online "
    "backends, the jobs queued or running, and each backend's status and queue depth.",
)
METRICS = _op(
    "GET",
    "/metrics",
    "Jobs, throughput and times, last hour and day",
    Metrics,
    description="Measured from the job table over the last hour and the last day: jobs by "
    "status, throughput per minute, success rate, shots, and per backend p50/p95 queue and "
    "execution times.",
)
TOPOLOGY = _op(
    "GET",
    "/topology",
    "Suppliers, providers, backends and couplings",
    Topology,
    description="Nodes (suppliers, providers, backends, with each backend's qubit coupling: "
    "pairs or all-to-all) and the edges from supplier to provider to backend.",
)
AGGREGATE = _op(
    "POST",
    "/aggregate",
    "Merge counts from several backends",
    AggregateResult,
    body=AggregateRequest,
    errors=(400, 422),
    description="Counts you already have, merged by `method` (the same code strategy all "
    "uses): nothing runs and nothing is charged.",
)
METHODS = _op(
    "GET",
    "/aggregate/methods",
    "The aggregation methods",
    AggregationMethods,
    description="Each method `/aggregate` and strategy all accept, with what it does.",
)
ESTIMATE = _op(
    "POST",
    "/estimate",
    "Cost, wait, run time and fidelity of a circuit per backend",
    EstimateResult,
    body=EstimateRequest,
    errors=(400, 404, 413, 422),
    description="Per backend able to run the circuit: the price-book cost, the expected "
    "queue wait and run time, and an estimated fidelity. Nothing runs and nothing is charged.",
)


def _accepted(outcome: dict[str, Any] | Accepted) -> Reply | dict[str, Any]:
    if isinstance(outcome, Accepted):
        location = f"{_BASE}/execute/{outcome.job_id}"
        return Reply(outcome.body, status=202, headers={"Location": location})
    return outcome


@EXECUTE.route(bp)
@bp.durable_client_input(client_name="client")
async def network_execute(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    orchestrations = DurableOrchestrations(client, asyncio.get_running_loop())
    return await handle_async(
        req,
        EXECUTE,
        lambda ctx: _accepted(services().network.execute(ctx.user, ctx.body, orchestrations)),
    )


@BATCH.route(bp)
@bp.durable_client_input(client_name="client")
async def network_batch(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    orchestrations = DurableOrchestrations(client, asyncio.get_running_loop())
    return await handle_async(
        req,
        BATCH,
        lambda ctx: _accepted(services().network.execute_batch(ctx.user, ctx.body, orchestrations)),
    )


@JOB.route(bp)
def network_job_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, JOB, lambda ctx: services().network.get(ctx.user, ctx.params["job_id"]))


@CANCEL.route(bp)
@bp.durable_client_input(client_name="client")
async def network_cancel(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    orchestrations = DurableOrchestrations(client, asyncio.get_running_loop())

    def cancel(ctx: RequestContext[None]) -> dict[str, Any]:
        return services().network.cancel(ctx.user, ctx.params["job_id"], orchestrations)

    return await handle_async(req, CANCEL, cancel)


@BACKENDS.route(bp)
def network_backends(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BACKENDS, lambda ctx: services().network.backends())


@BACKEND.route(bp)
def network_backend(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BACKEND, lambda ctx: services().network.backend(ctx.params["backend_id"]))


@CALIBRATION.route(bp)
def network_calibration(req: func.HttpRequest) -> func.HttpResponse:
    return handle(
        req, CALIBRATION, lambda ctx: services().network.calibration(ctx.params["backend_id"])
    )


@QUEUE.route(bp)
def network_queue(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, QUEUE, lambda ctx: services().network.queue(ctx.params["backend_id"]))


@STATUS.route(bp)
def network_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, STATUS, lambda ctx: services().network.status())


@METRICS.route(bp)
def network_metrics(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, METRICS, lambda ctx: services().network.metrics())


@TOPOLOGY.route(bp)
def network_topology(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, TOPOLOGY, lambda ctx: services().network.topology())


@AGGREGATE.route(bp)
def network_aggregate(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, AGGREGATE, lambda ctx: services().network.aggregate(ctx.body))


@METHODS.route(bp)
def network_aggregation_methods(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, METHODS, lambda ctx: services().network.methods())


@ESTIMATE.route(bp)
def network_estimate(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, ESTIMATE, lambda ctx: services().network.estimate(ctx.user, ctx.body))
