"""The deployment's license: its document, its verification and the operator's command."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import signing
from shared.config import Settings
from shared.legal import license as lic
from shared.legal.license import (
    QUANTUM_HARDWARE,
    LicenseStatus,
    Problem,
    current,
    issue,
    main,
    verify_license,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES = datetime(2027, 12, 31, tzinfo=UTC)
KEY = signing.new_private_key()
PUBLIC = signing.public_b64(KEY)


def document(
    features: tuple[str, ...] = (QUANTUM_HARDWARE, "priority_support"),
    *,
    key: Any = KEY,
    issued_at: datetime = ISSUED,
    expires_at: datetime = EXPIRES,
) -> dict[str, Any]:
    return issue(
        key,
        licensee="Example GmbH",
        license_type="enterprise",
        expires_at=expires_at,
        features=features,
        issued_at=issued_at,
        license_id="lic_test",
    )


def status(doc: dict[str, Any] | str | None, public: str | None = PUBLIC) -> LicenseStatus:
    text = doc if isinstance(doc, str) or doc is None else json.dumps(doc)
    return verify_license(Settings(license_document=text, license_public_key=public), now=NOW)


def test_a_license_signed_by_the_configured_issuer_and_in_force_is_valid() -> None:
    # given a license issued with the key whose public half is configured
    doc = document()
    # when it is verified within its validity period
    found = status(doc)
    # then it is valid and reports what it grants
    assert found == LicenseStatus(
        valid=True,
        type="enterprise",
        expires_at="2027-12-31T00:00:00.000Z",
        features=(QUANTUM_HARDWARE, "priority_support"),
        quantum_verified=True,
        reason=None,
        license_id="lic_test",
        licensee="Example GmbH",
    )


def test_the_document_may_be_given_base64_encoded_on_one_line() -> None:
    # given the document as base64 of its JSON (app settings are one line)
    encoded = base64.b64encode(json.dumps(document(), indent=2).encode()).decode()
    # when it is verified
    found = status(encoded)
    # then it is the same license
    assert found.valid and found.quantum_verified


@pytest.mark.parametrize(
    "field, value",
    [
        ("features", [QUANTUM_HARDWARE, "unlimited"]),
        ("expires_at", "2099-12-31T00:00:00.000Z"),
        ("type", "platinum"),
        ("licensee", "Someone Else Ltd"),
    ],
)
def test_a_tampered_license_is_a_bad_signature_and_reports_nothing_it_claims(
    field: str, value: Any
) -> None:
    # given a signed license whose payload was changed after signing
    doc = document()
    doc["license"][field] = value
    # when it is verified
    found = status(doc)
    # then it is invalid, and none of its (unverified) claims are reported
    assert found == LicenseStatus(valid=False, reason=Problem.BAD_SIGNATURE)
    assert not found.quantum_verified and found.features == ()


def test_a_license_signed_by_another_key_is_a_bad_signature() -> None:
    # given a license signed by a key that is not the configured issuer's
    doc = document(key=signing.new_private_key())
    # when it is verified with the configured public key
    found = status(doc)
    # then the signature does not verify and quantum_verified is false
    assert found.reason is Problem.BAD_SIGNATURE
    assert not found.valid and not found.quantum_verified


def test_a_signature_copied_from_another_license_does_not_verify() -> None:
    # given a signature of one license attached to another
    doc = document(features=(QUANTUM_HARDWARE,))
    doc["signature"] = document(features=())["signature"]
    # when it is verified
    # then it is a bad signature
    assert status(doc).reason is Problem.BAD_SIGNATURE


def test_an_expired_license_is_invalid_but_says_what_and_when() -> None:
    # given a verified license whose end has passed
    doc = document(expires_at=NOW - timedelta(days=1))
    # when it is verified
    found = status(doc)
    # then it is invalid and grants nothing, but its (verified) type and end are reported
    assert found.reason is Problem.EXPIRED and not found.valid
    assert found.type == "enterprise" and found.expires_at == "2026-05-31T00:00:00.000Z"
    assert found.features == () and not found.quantum_verified


def test_a_license_ends_at_its_expires_at_instant() -> None:
    # given a license that expires exactly now
    doc = document(expires_at=NOW)
    # when it is verified
    # then it has already expired
    assert status(doc).reason is Problem.EXPIRED


def test_a_license_issued_in_the_future_is_not_yet_valid() -> None:
    # given a license whose validity starts after now
    doc = document(issued_at=NOW + timedelta(days=1))
    # when it is verified
    found = status(doc)
    # then it is not valid yet
    assert found.reason is Problem.NOT_YET_VALID
    assert not found.valid and not found.quantum_verified


def test_without_the_quantum_hardware_feature_a_valid_license_is_not_quantum_verified() -> None:
    # given a valid license without the quantum_hardware feature
    doc = document(features=("priority_support",))
    # when it is verified
    found = status(doc)
    # then it is valid but not quantum_verified
    assert found.valid and found.features == ("priority_support",)
    assert not found.quantum_verified


@pytest.mark.parametrize("configured", [None, "", "   "])
def test_no_license_configured_is_invalid_with_nothing_reported(configured: str | None) -> None:
    # given no license document in the settings
    # when it is verified
    found = status(configured)
    # then it is invalid and says why
    assert found == LicenseStatus(valid=False, reason=Problem.NOT_CONFIGURED)


@pytest.mark.parametrize(
    "public, reason",
    [(None, Problem.NO_PUBLIC_KEY), ("", Problem.NO_PUBLIC_KEY)]
    + [(bad, Problem.BAD_PUBLIC_KEY) for bad in ("not base64!", "c2hvcnQ=")],
)
def test_a_license_without_a_usable_public_key_is_invalid(
    public: str | None, reason: Problem
) -> None:
    # given a well-signed license but no (or a broken) issuer key configured
    # when it is verified
    found = status(document(), public)
    # then it is invalid, never quantum_verified
    assert found == LicenseStatus(valid=False, reason=reason)


def malformed_documents() -> list[str]:
    good = document()
    naive = json.loads(json.dumps(good))
    naive["license"]["expires_at"] = "2027-12-31T00:00:00"
    overflow = json.loads(json.dumps(good))
    overflow["license"]["expires_at"] = "9999-12-31T23:59:59-05:00"
    no_features = json.loads(json.dumps(good))
    del no_features["license"]["features"]
    bad_feature = json.loads(json.dumps(good))
    bad_feature["license"]["features"] = ["quantum hardware\n"]
    return [
        "not json",
        "{",
        "[1, 2]",
        base64.b64encode(b"not json either").decode(),
        base64.b64encode(b"\xff\xfe").decode(),
        json.dumps({"algorithm": "Ed25519", "signature": "AAAA"}),
        json.dumps({**good, "signature": 42}),
        json.dumps({**good, "license": "a string"}),
        json.dumps(naive),
        json.dumps(overflow),
        json.dumps(no_features),
        json.dumps(bad_feature),
        '{"license": ' + "[" * 50_000,
        "{" + " " * 70_000 + "}",
    ]


@pytest.mark.parametrize("text", malformed_documents())
def test_a_malformed_document_is_invalid_and_never_raises(text: str) -> None:
    # given a document that is not of the documented shape
    # when it is verified
    found = status(text)
    # then it is malformed
    assert found == LicenseStatus(valid=False, reason=Problem.MALFORMED)


def test_only_ed25519_signatures_are_accepted() -> None:
    # given a signed document that claims another algorithm
    doc = {**document(), "algorithm": "none"}
    # when it is verified
    # then it is refused before any signature check
    assert status(doc) == LicenseStatus(valid=False, reason=Problem.UNSUPPORTED_ALGORITHM)


@pytest.fixture
def process_license(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`current()` reads a license issued here (settings and its cache fresh around the test)."""
    from shared.config import get_settings

    monkeypatch.setenv("QCOS_LICENSE", json.dumps(document()))
    monkeypatch.setenv("QCOS_LICENSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setattr(lic, "utcnow", lambda: NOW)
    get_settings.cache_clear()
    lic.reset()
    yield
    get_settings.cache_clear()
    lic.reset()


def test_current_verifies_once_and_logs_no_signature_or_key(
    process_license: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a configured license
    caplog.set_level(logging.INFO, logger="shared.legal.license")
    # when the process asks for its license twice, and the settings change in between
    first = current()
    monkeypatch.setenv("QCOS_LICENSE", "")
    second = current()
    # then it verified once (logged once) and kept the answer
    assert first.valid and first.quantum_verified and second == first
    logged = [r.getMessage() for r in caplog.records if r.name == "shared.legal.license"]
    assert len(logged) == 1 and "lic_test" in logged[0]
    assert document()["signature"] not in caplog.text and PUBLIC not in caplog.text


def test_current_reports_a_license_expired_while_the_process_runs(
    process_license: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a license verified while it was in force
    assert current().valid
    # when time passes its end
    monkeypatch.setattr(lic, "utcnow", lambda: EXPIRES + timedelta(seconds=1))
    # then the same process reports it expired
    assert current().reason is Problem.EXPIRED and not current().quantum_verified


def test_the_operator_command_issues_a_document_that_verifies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a key pair from keygen
    assert main(["keygen"]) == 0
    keys = json.loads(capsys.readouterr().out)
    # when a license is issued with it, as JSON and as base64
    argv = [
        "issue",
        "--key",
        keys["private_key"],
        "--licensee",
        "Example GmbH",
        "--type",
        "enterprise",
        "--issued",
        "2026-01-01T00:00:00Z",
        "--expires",
        "2027-12-31T00:00:00Z",
        "--feature",
        QUANTUM_HARDWARE,
        "--feature",
        "priority_support",
    ]
    assert main(argv) == 0
    as_json = capsys.readouterr().out.strip()
    assert main([*argv, "--base64"]) == 0
    as_base64 = capsys.readouterr().out.strip()
    # then both verify with the public key and grant what was asked
    for text in (as_json, as_base64):
        found = status(text, keys["public_key"])
        assert found.valid and found.quantum_verified and found.type == "enterprise"
        assert found.features == (QUANTUM_HARDWARE, "priority_support")
    assert json.loads(as_json)["algorithm"] == "Ed25519" and "\n" not in as_json


@pytest.mark.parametrize(
    "change",
    [
        {"--key": "short"},
        {"--expires": "2027-12-31"},
        {"--expires": "2025-01-01T00:00:00Z"},
        {"--type": "two words"},
    ],
)
def test_the_operator_command_refuses_bad_input_with_status_2(
    change: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # given otherwise good arguments
    options = {
        "--key": signing.seed_b64(KEY),
        "--licensee": "Example GmbH",
        "--type": "enterprise",
        "--issued": "2026-01-01T00:00:00Z",
        "--expires": "2027-12-31T00:00:00Z",
    } | change
    # when the command runs
    code = main(["issue", *[part for pair in options.items() for part in pair]])
    # then it prints no document and says why on stderr
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and out.err.startswith("error:")
