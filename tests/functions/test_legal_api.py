"""The public facts (`/pricing`, `/legal`, `/legal/{document}`) and the license status, calling
the registered functions directly."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared import signing
from shared.accounts.tiers import TIERS
from shared.api import legal, openapi
from shared.config import get_settings
from shared.legal.documents import APP_ROOT, MAX_DOCUMENT_BYTES
from shared.legal.license import QUANTUM_HARDWARE, issue, reset
from shared.services import Services

ERROR_KEYS = {"detail", "error_code", "request_id"}
LICENSE_TEXT = (APP_ROOT / "LICENSE").read_text(encoding="utf-8")


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Set app settings and have the app read them again."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    reset()


def document(name: str) -> func.HttpResponse:
    """GET /legal/{name}, answered as the worker would see it (with its media type)."""
    req = func.HttpRequest(
        method="GET",
        url=f"http://127.0.0.1:7071/legal/{name}",
        headers={},
        route_params={"document": name},
        body=b"",
    )
    return legal.legal_document(req)


def assert_not_found(resp: func.HttpResponse) -> None:
    body = json.loads(resp.get_body())
    assert resp.status_code == 404 and resp.mimetype == "application/json"
    assert set(body) == ERROR_KEYS and body["error_code"] == "DOCUMENT_NOT_FOUND"
    assert body["request_id"] == resp.headers["X-Request-ID"]


def test_pricing_is_public_and_publishes_the_tier_table_limits_are_enforced_from(
    services_env: Services, http: Callable[..., Any]
) -> None:
    # given no API key
    # when the prices are asked for
    answer = http(legal.pricing, "GET", "/pricing")
    # then every tier of TIERS is there, with its limits, rate limit and monthly EUR price
    assert answer.status == 200
    assert answer.body["currency"] == "EUR" and answer.body["period"] == "month"
    assert answer.body["tiers"] == [
        {
            "name": tier.name.value,
            "daily_jobs": "unlimited" if tier.daily_jobs is None else tier.daily_jobs,
            "max_qubits": tier.max_qubits,
            "max_shots": tier.max_shots,
            "requests_per_minute": tier.requests_per_minute,
            "price_eur": "custom" if tier.price_eur is None else tier.price_eur,
        }
        for tier in TIERS.values()
    ]
    # enterprise: no daily limit, a price by contract
    assert answer.body["tiers"][-1]["daily_jobs"] == "unlimited"
    assert answer.body["tiers"][-1]["price_eur"] == "custom"


def test_legal_without_settings_has_null_company_fields_and_links_all_four_documents_here(
    services_env: Services, http: Callable[..., Any]
) -> None:
    # given no legal settings
    # when the legal details are asked for
    answer = http(legal.legal, "GET", "/legal")
    # then the company fields are null and every document is this deployment's /legal/{name}
    assert answer.status == 200
    assert answer.body == {
        "company": {
            "name": None,
            "registry_code": None,
            "address": None,
            "country": None,
            "eu_member": None,
            "email": None,
            "vat_id": None,
            "website": None,
        },
        "documents": {
            name: f"http://127.0.0.1:7071/legal/{name}"
            for name in ("license", "eula", "terms", "privacy")
        },
    }


def test_legal_with_settings_names_the_operator_and_where_its_documents_are(
    services_env: Services,
    http: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the operator's details, and the site that publishes its documents
    configure(
        monkeypatch,
        QCOS_LEGAL_COMPANY_NAME="Example GmbH",
        QCOS_LEGAL_REGISTRY_CODE="HRB 12345",
        QCOS_LEGAL_ADDRESS="Musterstrasse 1, 10115 Berlin",
        QCOS_LEGAL_COUNTRY="DE",
        QCOS_LEGAL_EMAIL="legal@example.com",
        QCOS_LEGAL_VAT_ID="DE123456789",
        QCOS_LEGAL_WEBSITE="https://example.com",
        QCOS_LEGAL_DOCUMENTS_URL="https://example.com/legal",
    )
    # when the legal details are asked for
    answer = http(legal.legal, "GET", "/legal")
    # then they are the settings, and the documents are on the operator's site
    assert answer.status == 200
    assert answer.body["company"] == {
        "name": "Example GmbH",
        "registry_code": "HRB 12345",
        "address": "Musterstrasse 1, 10115 Berlin",
        "country": "DE",
        "eu_member": True,
        "email": "legal@example.com",
        "vat_id": "DE123456789",
        "website": "https://example.com",
    }
    assert answer.body["documents"]["eula"] == "https://example.com/legal/eula"


@pytest.mark.parametrize(
    ("country", "member"), [("Estonia", True), ("ee", True), ("Switzerland", False)]
)
def test_eu_member_follows_the_country(
    services_env: Services,
    http: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    country: str,
    member: bool,
) -> None:
    configure(monkeypatch, QCOS_LEGAL_COUNTRY=country)
    assert http(legal.legal, "GET", "/legal").body["company"]["eu_member"] is member


def test_the_license_document_is_the_repositorys_mit_license_as_plain_text(
    services_env: Services, http: Callable[..., Any]
) -> None:
    # given the LICENSE file deployed with the app
    # when it is asked for
    resp = document("license")
    answer = http(
        legal.legal_document, "GET", "/legal/license", route_params={"document": "license"}
    )
    # then it is served as it is, as plain text
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    assert answer.body == LICENSE_TEXT and answer.body.startswith("MIT License")
    assert "Copyright (c) 2026 The QCOS gateway authors" in answer.body


def test_terms_are_the_default_text_until_configured_then_the_operators_file(
    services_env: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given no terms configured, and the operator's name
    configure(monkeypatch, QCOS_LEGAL_COMPANY_NAME="Example GmbH")
    # when they are asked for
    resp = document("terms")
    # then the gateway's default terms are served, naming the operator
    assert resp.status_code == 200 and resp.mimetype == "text/markdown"
    assert "operated by Example GmbH" in resp.get_body().decode("utf-8")
    # given terms in a Markdown file
    terms = tmp_path / "terms.md"
    terms.write_text("# Terms of service\n\nBe nice.\n", encoding="utf-8")
    configure(monkeypatch, QCOS_LEGAL_TERMS_FILE=str(terms))
    # when they are asked for
    resp = document("terms")
    # then the file is served as Markdown
    assert resp.status_code == 200 and resp.mimetype == "text/markdown"
    assert resp.get_body().decode("utf-8") == "# Terms of service\n\nBe nice.\n"


@pytest.mark.parametrize("name", ["eula", "terms", "privacy"])
def test_every_document_has_a_default_text(services_env: Services, name: str) -> None:
    resp = document(name)
    assert resp.status_code == 200 and resp.get_body().decode("utf-8").startswith("# ")


def test_a_configured_file_that_is_missing_is_404(
    services_env: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, QCOS_LEGAL_PRIVACY_FILE=str(tmp_path / "missing.md"))
    assert_not_found(document("privacy"))


def test_a_relative_document_path_is_read_from_the_app_directory(
    services_env: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an EULA setting relative to the app's directory
    configure(monkeypatch, QCOS_LEGAL_EULA_FILE="LICENSE")
    # when the EULA is asked for
    resp = document("eula")
    # then the file beside the app is served
    assert resp.status_code == 200 and resp.get_body().decode("utf-8") == LICENSE_TEXT


def test_html_documents_are_served_as_html(
    services_env: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a privacy policy in an HTML file
    privacy = tmp_path / "privacy.html"
    privacy.write_text("<h1>Privacy</h1>", encoding="utf-8")
    configure(monkeypatch, QCOS_LEGAL_PRIVACY_FILE=str(privacy))
    # when it is asked for
    resp = document("privacy")
    # then it is HTML
    assert resp.status_code == 200 and resp.mimetype == "text/html"


@pytest.mark.parametrize(
    "name", ["cookies", "LICENSE", "../LICENSE", "license/../license", "/etc/passwd", ""]
)
def test_any_other_document_name_is_404_and_never_a_path(services_env: Services, name: str) -> None:
    # given a name that is not one of license, eula, terms, privacy
    # when it is asked for
    resp = document(name)
    # then it is the standard 404, whatever the name looks like
    assert_not_found(resp)
    assert json.loads(resp.get_body())["detail"] == "Unknown legal document"


def test_a_configured_directory_is_404(
    services_env: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a terms setting that names a directory
    configure(monkeypatch, QCOS_LEGAL_TERMS_FILE=str(tmp_path))
    # when the terms are asked for
    # then they are not found
    assert_not_found(document("terms"))


def test_a_document_over_the_size_bound_is_not_served(
    services_env: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given terms larger than the gateway serves
    terms = tmp_path / "terms.txt"
    terms.write_bytes(b"x" * (MAX_DOCUMENT_BYTES + 1))
    configure(monkeypatch, QCOS_LEGAL_TERMS_FILE=str(terms))
    # when they are asked for
    resp = document("terms")
    # then the answer is an error, not a truncated document
    assert resp.status_code == 500 and json.loads(resp.get_body())["error_code"] == "INTERNAL_ERROR"


def test_license_status_without_a_license_is_200_and_not_valid(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given no license configured and a user
    user = make_user()
    # when the user asks for the license status
    answer = http(legal.license_status, "GET", "/api/v1/license/status", headers=user.headers)
    # then it answers, saying there is no valid license
    assert answer.status == 200
    assert answer.body == {
        "valid": False,
        "type": None,
        "expires_at": None,
        "features": [],
        "quantum_verified": False,
    }


def test_license_status_with_a_valid_license_is_quantum_verified(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a license signed by the configured issuer that grants quantum hardware
    key = signing.new_private_key()
    doc = issue(
        key,
        licensee="Example GmbH",
        license_type="enterprise",
        expires_at=datetime(2099, 12, 31, tzinfo=UTC),
        features=[QUANTUM_HARDWARE],
    )
    configure(
        monkeypatch,
        QCOS_LICENSE=json.dumps(doc),
        QCOS_LICENSE_PUBLIC_KEY=signing.public_b64(key),
    )
    user = make_user()
    # when the user asks for the license status
    answer = http(legal.license_status, "GET", "/api/v1/license/status", headers=user.headers)
    # then the license is valid and quantum_verified
    assert answer.status == 200
    assert answer.body == {
        "valid": True,
        "type": "enterprise",
        "expires_at": "2099-12-31T00:00:00.000Z",
        "features": [QUANTUM_HARDWARE],
        "quantum_verified": True,
    }


def test_license_status_needs_an_api_key(services_env: Services, http: Callable[..., Any]) -> None:
    # given no API key
    # when the license status is asked for
    answer = http(legal.license_status, "GET", "/api/v1/license/status")
    # then it is the standard 401
    assert answer.status == 401 and set(answer.body) == ERROR_KEYS
    assert answer.body["error_code"] == "UNAUTHORIZED"


def test_the_spec_documents_documents_as_text_and_the_license_status_as_keyed(
    services_env: Services, http: Callable[..., Any]
) -> None:
    # given the OpenAPI document
    spec = http(openapi.openapi_json, "GET", "/openapi.json").body
    # when the legal operations are looked up
    document_op = spec["paths"]["/legal/{document}"]["get"]
    status_op = spec["paths"]["/api/v1/license/status"]["get"]
    # then documents are text, public, with a 404; the license status needs a key
    assert set(document_op["responses"]["200"]["content"]) == {
        "text/plain",
        "text/markdown",
        "text/html",
    }
    assert document_op["security"] == [] and "404" in document_op["responses"]
    assert spec["paths"]["/pricing"]["get"]["security"] == []
    assert status_op["security"] == [{"ApiKeyHeader": []}, {"Bearer": []}]
    assert "401" in status_op["responses"]
