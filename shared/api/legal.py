"""Public facts about the service: `GET /pricing` (the tier table), `GET /legal` (the
operator and its documents), `GET /legal/{document}`; and `GET /api/v1/license/status`."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import BaseModel, Field

from shared.accounts.tiers import CUSTOM, TIERS, UNLIMITED, TierName
from shared.config import get_settings
from shared.http import Auth, Operation, Reply, RequestContext, handle
from shared.legal import documents
from shared.legal.license import current

bp = func.Blueprint()


class TierPrice(BaseModel):
    name: TierName
    daily_jobs: int | Literal["unlimited"] = Field(
        description="Jobs per UTC day, or `unlimited`", examples=[10, "unlimited"]
    )
    max_qubits: int = Field(description="Qubits one circuit may use", examples=[20])
    max_shots: int = Field(description="Shots one job may ask for", examples=[1024])
    requests_per_minute: int = Field(
        description="Requests per minute per API key (rate limit)", examples=[60]
    )
    price_eur: int | Literal["custom"] = Field(
        description="Price in EUR per month, or `custom` (set by contract)",
        examples=[0, 99, "custom"],
    )


class Pricing(BaseModel):
    currency: str = Field(description="The currency of every price", examples=["EUR"])
    period: str = Field(description="What one price pays for", examples=["month"])
    tiers: list[TierPrice] = Field(description="Every tier, as the limits are enforced")


class Company(BaseModel):
    name: str | None = Field(
        description="The operator's legal name; null: not configured",
        examples=["Example GmbH"],
    )
    registry_code: str | None = Field(
        description="Its number in its country's company register", examples=["17048927"]
    )
    address: str | None = Field(examples=["Musterstrasse 1, 10115 Berlin, Germany"])
    country: str | None = Field(examples=["Germany"])
    eu_member: bool | None = Field(
        description="Whether `country` is a member state of the EU; null: no country configured"
    )
    email: str | None = Field(examples=["legal@example.com"])
    vat_id: str | None = Field(examples=["DE123456789"])
    website: str | None = Field(examples=["https://example.com"])


class Documents(BaseModel):
    license: str = Field(
        description="This software's open-source license (MIT)",
        examples=["https://example.com/legal/license"],
    )
    eula: str = Field(examples=["https://example.com/legal/eula"])
    terms: str = Field(examples=["https://example.com/legal/terms"])
    privacy: str = Field(examples=["https://example.com/legal/privacy"])


class LegalInfo(BaseModel):
    company: Company = Field(description="The operator of this deployment; unset fields null")
    documents: Documents = Field(
        description="Each document's URL: where the operator publishes them "
        "(`QCOS_LEGAL_DOCUMENTS_URL`), else this deployment's `/legal/{document}`"
    )


class LicenseStatusView(BaseModel):
    valid: bool = Field(
        description="The license's Ed25519 signature verified with the configured issuer key "
        "and now is within its validity period. false also when no license is configured "
        "(every open feature still works)."
    )
    type: str | None = Field(
        description="The license type, when the signature verified (also once expired)",
        examples=["enterprise", None],
    )
    expires_at: str | None = Field(
        description="When the license ends (UTC), when the signature verified",
        examples=["2027-12-31T00:00:00.000Z", None],
    )
    features: list[str] = Field(
        description="What the license grants; empty unless valid", examples=[["quantum_hardware"]]
    )
    quantum_verified: bool = Field(
        description="valid, and the license grants quantum_hardware (running on the quantum "
        "suppliers' hardware). Not a claim about post-quantum cryptography (Ed25519 is not "
        "post-quantum), nor about where any job ran."
    )


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
    return Pricing(
        currency="EUR",
        period="month",
        tiers=[
            TierPrice(
                name=tier.name,
                daily_jobs=UNLIMITED if tier.daily_jobs is None else tier.daily_jobs,
                max_qubits=tier.max_qubits,
                max_shots=tier.max_shots,
                requests_per_minute=tier.requests_per_minute,
                price_eur=CUSTOM if tier.price_eur is None else tier.price_eur,
            )
            for tier in TIERS.values()
        ],
    )


def _legal(ctx: RequestContext[None]) -> LegalInfo:
    legal = get_settings().legal
    url = urlsplit(ctx.request.url)
    return LegalInfo(
        company=Company(
            name=legal.company_name,
            registry_code=legal.registry_code,
            address=legal.address,
            country=legal.country,
            eu_member=documents.eu_member(legal.country),
            email=legal.email,
            vat_id=legal.vat_id,
            website=legal.website,
        ),
        documents=Documents(**documents.urls(legal, f"{url.scheme}://{url.netloc}")),
    )


def _document(ctx: RequestContext[None]) -> Reply:
    document = documents.read(ctx.params.get("document", ""), get_settings().legal)
    return Reply(document.text, media_type=document.media_type)


def _license_status(ctx: RequestContext[None]) -> LicenseStatusView:
    status = current()
    return LicenseStatusView(
        valid=status.valid,
        type=status.type,
        expires_at=status.expires_at,
        features=list(status.features),
        quantum_verified=status.quantum_verified,
    )
