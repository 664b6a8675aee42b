"""Public facts about the service: `GET /pricing` (the tier table), `GET /legal` (the
operator and its documents), `GET /legal/{document}`; and `GET /api/v1/license/status`."""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func

from shared.accounts.schemas import Pricing, pricing_view
from shared.accounts.tiers import TIERS
from shared.config import get_settings
from shared.http import Auth, Operation, Reply, RequestContext, handle
from shared.legal import documents
from shared.legal.license import current
from shared.legal.schemas import LegalInfo, LicenseStatusView, legal_info, license_view

bp = func.Blueprint()


PRICING = Operation(
    "GET",
    "/pricing",
    "The tiers: limits, rate limits and prices",
    Pricing,
    auth=Auth.PUBLIC,
    tag="account",
    description="From the tier table every limit is enforced from. Prices in EUR per month; "
    "`daily_jobs` is `unlimited` where no daily limit applies, and `price_eur` `custom` where "
    "the price is set by contract.",
)
LEGAL = Operation(
    "GET",
    "/legal",
    "The operator's company details and legal documents",
    LegalInfo,
    auth=Auth.PUBLIC,
    tag="legal",
    description="The operator's name, register code, address and contacts as configured, and "
    "the URLs of the legal documents: license, eula, terms, privacy.",
)
DOCUMENT = Operation(
    "GET",
    "/legal/{document}",
    "A legal document: license, eula, terms or privacy",
    None,
    auth=Auth.PUBLIC,
    tag="legal",
    errors=(404,),
    media_types=documents.MEDIA_TYPES,
    description="The document as text: `license` is this software's open-source license; the "
    "others are the operator's files, or the gateway's default texts where none is configured. "
    "404 (DOCUMENT_NOT_FOUND) for any other name.",
)
LICENSE_STATUS = Operation(
    "GET",
    "/api/v1/license/status",
    "The deployment's license",
    LicenseStatusView,
    tag="legal",
    errors=(401, 503),
    description="Verified from the signed license document configured for this deployment. "
    "Without one: `valid: false`, and every open feature still works.",
)


@PRICING.route(bp)
def pricing(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, PRICING, _pricing)


@LEGAL.route(bp)
def legal(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LEGAL, _legal)


@DOCUMENT.route(bp)
def legal_document(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, DOCUMENT, _document)


@LICENSE_STATUS.route(bp)
def license_status(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LICENSE_STATUS, _license_status)


def _pricing(ctx: RequestContext[None]) -> Pricing:
    return pricing_view(TIERS.values())


def _legal(ctx: RequestContext[None]) -> LegalInfo:
    url = urlsplit(ctx.request.url)
    return legal_info(get_settings().legal, f"{url.scheme}://{url.netloc}")


def _document(ctx: RequestContext[None]) -> Reply:
    document = documents.read(ctx.params.get("document", ""), get_settings().legal)
    return Reply(document.text, media_type=document.media_type)


def _license_status(ctx: RequestContext[None]) -> LicenseStatusView:
    return license_view(current())
