"""The supplier API: list suppliers, their providers and backends, and run on a backend."""

from __future__ import annotations

import azure.functions as func

from shared.api.jobs import accepted_reply
from shared.http import Operation, Reply, RequestContext, handle
from shared.jobs.schemas import JobAccepted, SupplierExecuteRequest
from shared.pricing.listing import providers
from shared.services import services
from shared.suppliers.schemas import BraketDeviceList, IBMBackendList, ProviderList, SupplierList

bp = func.Blueprint()

SUPPLIERS = Operation(
    "GET",
    "/api/v1/suppliers",
    "The quantum cloud suppliers",
    SupplierList,
    errors=(401, 503),
    tag="suppliers",
    description="Azure Quantum, IBM Quantum and AWS Braket, each `cloud` when its credentials "
    "are configured and `emulated` otherwise; `unavailable` with the reason when configured "
    "credentials fail.",
)
PROVIDERS = Operation(
    "GET",
    "/api/v1/{supplier}/providers",
    "A supplier's providers and their targets",
    ProviderList,
    errors=(401, 404, 503),
    tag="suppliers",
    description="Each provider's `targets` (names: each one a `backend` for "
    "`POST /api/v1/{supplier}/execute`) and `cost_model` (how it bills); `target_details` "
    "gives each target's qubits, gates, kind (analog devices take no circuits), status, price, "
    "and what stands in for it when emulated. 404 "
    "SUPPLIER_NOT_FOUND for an unknown supplier.",
)
SUPPLIER_EXECUTE = Operation(
    "POST",
    "/api/v1/{supplier}/execute",
    "Queue a circuit on a supplier's backend",
    JobAccepted,
    body=SupplierExecuteRequest,
    idempotent=True,
    status=202,
    errors=(400, 401, 403, 404, 409, 413, 422, 503),
    tag="suppliers",
    description="Checks that the circuit fits the backend (qubits, operations), stores it and "
    "queues it. In the cloud the worker submits it with the supplier's SDK and polls it; "
    "emulated, a local stand-in runs it. Status, results and cancel go through the v1 job "
    "endpoints; results say `metadata.mode`. 404 SUPPLIER_NOT_FOUND or BACKEND_NOT_FOUND.",
)
IBM_BACKENDS = Operation(
    "GET",
    "/api/v1/ibm_quantum/backends",
    "IBM Quantum backends",
    IBMBackendList,
    errors=(401, 503),
    tag="suppliers",
    description="The IBM targets in the shape the QCOS Python client reads.",
)
BRAKET_DEVICES = Operation(
    "GET",
    "/api/v1/braket/devices",
    "AWS Braket devices",
    BraketDeviceList,
    errors=(401, 503),
    tag="suppliers",
    description="The Braket targets in the shape the QCOS Python client reads.",
)


@SUPPLIERS.route(bp)
def list_suppliers(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, SUPPLIERS, lambda ctx: services().suppliers.list_suppliers())


@PROVIDERS.route(bp)
def list_providers(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, PROVIDERS, lambda ctx: providers(ctx.params["supplier"]))


@SUPPLIER_EXECUTE.route(bp)
def supplier_execute(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, SUPPLIER_EXECUTE, _submit, existing=_submitted)


@IBM_BACKENDS.route(bp)
def ibm_backends(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, IBM_BACKENDS, lambda ctx: services().suppliers.ibm_backends())


@BRAKET_DEVICES.route(bp)
def braket_devices(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, BRAKET_DEVICES, lambda ctx: services().suppliers.braket_devices())


def _submit(ctx: RequestContext[SupplierExecuteRequest]) -> Reply:
    accepted = services().jobs.submit_to_supplier(ctx.user, ctx.params["supplier"], ctx.body)
    return Reply(accepted, headers={"Location": f"/api/v1/status/{accepted.job_id}"})


def _submitted(ctx: RequestContext[SupplierExecuteRequest], job_id: str) -> Reply:
    """`_submit`'s answer for the job `job_id` an earlier attempt made (NotFound: none)."""
    return accepted_reply(services().jobs.accepted(ctx.user, job_id))
