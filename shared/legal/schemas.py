"""Response models of `GET /legal` and `GET /api/v1/license/status` (the OpenAPI spec is
generated from these)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.config import LegalSettings
from shared.legal import documents
from shared.legal.license import LicenseStatus


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


# -- converters -----------------------------------------------------------------------------------


def legal_info(legal: LegalSettings, base_url: str) -> LegalInfo:
    """The operator's details as configured, and each document's URL (at `base_url` unless the
    operator publishes them elsewhere)."""
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
        documents=Documents(**documents.urls(legal, base_url)),
    )


def license_view(status: LicenseStatus) -> LicenseStatusView:
    return LicenseStatusView(
        valid=status.valid,
        type=status.type,
        expires_at=status.expires_at,
        features=list(status.features),
        quantum_verified=status.quantum_verified,
    )
