"""The deployment's license: a JSON document its issuer signs with Ed25519 (`shared.signing`).

The setting `QCOS_LICENSE` holds the document, as JSON or as base64 of that JSON (app settings
are one line); `QCOS_LICENSE_PUBLIC_KEY` holds the issuer's public key (base64 of its 32 raw
bytes). The document:

    {
      "license": {
        "id": "lic_5f0c...", "licensee": "Example GmbH", "type": "enterprise",
        "issued_at": "2026-01-01T00:00:00.000Z", "expires_at": "2027-12-31T00:00:00.000Z",
        "features": ["quantum_hardware"]
      },
      "algorithm": "Ed25519",
      "signature": "<base64 of signing.sign(issuer_key, document['license'])>"
    }

Everything under `license` is signed (canonical JSON, `shared.signing.canonical`); `algorithm`
and `signature` are not, so they cannot change what the license says. A license is *valid*
when its signature verifies with the configured public key and `issued_at <= now <
expires_at`. `quantum_verified` is true only for a valid license that grants `quantum_hardware`
(see `LicenseStatus`). Nothing in the gateway is refused because of the license: without one,
every open feature works and the status says `valid: false`.

Operators issue licenses with `python -m shared.legal.license keygen` and `... issue`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import signing
from shared.clock import iso, parse_iso, utcnow
from shared.config import Settings, get_settings

logger = logging.getLogger(__name__)

# The feature that covers running circuits on quantum hardware (the cloud suppliers).
QUANTUM_HARDWARE = "quantum_hardware"
ALGORITHMS = (signing.ALGORITHM,)
MAX_DOCUMENT_CHARS = 65_536
MAX_FEATURES = 100
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # a license type or a feature
_TEXT_MAX = 200  # an id or a licensee


class Problem(StrEnum):
    """Why a license is not valid (for logs and the docs; not part of the API answer)."""

    NOT_CONFIGURED = "not_configured"  # QCOS_LICENSE unset
    MALFORMED = "malformed"  # not JSON (or base64 of JSON) of the documented shape
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"  # `algorithm` is not Ed25519
    NO_PUBLIC_KEY = "no_public_key"  # QCOS_LICENSE_PUBLIC_KEY unset
    BAD_PUBLIC_KEY = "bad_public_key"  # QCOS_LICENSE_PUBLIC_KEY is not base64 of 32 bytes
    BAD_SIGNATURE = "bad_signature"  # the signature does not verify with that key
    NOT_YET_VALID = "not_yet_valid"  # now < issued_at
    EXPIRED = "expired"  # now >= expires_at


@dataclass(frozen=True)
class LicenseStatus:
    """What the deployment's license grants at one moment.

    - `valid`: the signature verified with the configured issuer key and `issued_at <= now <
      expires_at`.
    - `type`, `expires_at`, `license_id`, `licensee`: from the signed document when its
      signature verified (so also for an expired license), else None: unverified claims are
      never reported.
    - `features`: what the license grants, only while it is valid (else empty).
    - `quantum_verified`: `valid` and `QUANTUM_HARDWARE` in `features`. It says the license was
      verified and covers running on quantum hardware; it says nothing about post-quantum
      cryptography (Ed25519 is not post-quantum), about whether any supplier is configured or
      answering, nor about where a given job ran (each result's `mode` says that).
    - `reason`: why it is not valid (None when valid).
    """

    valid: bool
    type: str | None = None
    expires_at: str | None = None
    features: tuple[str, ...] = ()
    quantum_verified: bool = False
    reason: Problem | None = None
    license_id: str | None = None
    licensee: str | None = None


class MalformedLicense(ValueError):
    """A license document is not of the documented shape; the message says what is wrong (and
    never quotes the document)."""


@dataclass(frozen=True)
class License:
    """The signed fields of a license document."""

    id: str
    licensee: str
    type: str
    issued_at: datetime
    expires_at: datetime
    features: tuple[str, ...]


@dataclass(frozen=True)
class SignedLicense:
    """A parsed license document: its fields, and exactly what was signed."""

    license: License
    payload: dict[str, Any]
    algorithm: str
    signature: str


def parse_document(text: str) -> SignedLicense:
    """Parse a license document given as JSON or as base64 of JSON. Checks its shape only, not
    its signature; raises `MalformedLicense`."""
    raw = text.strip()
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise MalformedLicense(f"the document is over {MAX_DOCUMENT_CHARS} characters")
    try:
        if not raw.startswith("{"):
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        document = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise MalformedLicense("the document is neither JSON nor base64 of JSON") from exc
    if not isinstance(document, dict):
        raise MalformedLicense("the document must be a JSON object")
    payload, algorithm, signature = (document.get(k) for k in ("license", "algorithm", "signature"))
    if not isinstance(payload, dict):
        raise MalformedLicense("`license` must be an object")
    if not isinstance(algorithm, str) or not isinstance(signature, str):
        raise MalformedLicense("`algorithm` and `signature` must be strings")
    return SignedLicense(_fields(payload), payload, algorithm, signature)


def _fields(payload: dict[str, Any]) -> License:
    features = payload.get("features")
    if not isinstance(features, list) or len(features) > MAX_FEATURES:
        raise MalformedLicense(f"`license.features` must be a list of at most {MAX_FEATURES}")
    return License(
        id=_text(payload, "id"),
        licensee=_text(payload, "licensee"),
        type=_name(payload.get("type"), "license.type"),
        issued_at=_moment(payload, "issued_at"),
        expires_at=_moment(payload, "expires_at"),
        features=tuple(dict.fromkeys(_name(f, "license.features[]") for f in features)),
    )


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > _TEXT_MAX:
        raise MalformedLicense(f"`license.{key}` must be a non-empty string (<= {_TEXT_MAX})")
    return value


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise MalformedLicense(f"`{what}` must be 1-64 of A-Z a-z 0-9 _ . : -")
    return value


def _moment(payload: dict[str, Any], key: str) -> datetime:
    return _utc(payload.get(key), f"`license.{key}`")


def _utc(value: Any, what: str) -> datetime:
    """`value`, an ISO 8601 time with a time zone, in UTC; raises `MalformedLicense`."""
    try:
        moment = parse_iso(value) if isinstance(value, str) else None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise MalformedLicense(f"{what} must be an ISO 8601 time with a time zone")


def check_signature(document: str | None, public_key: str | None) -> License | Problem:
    """The license `document` says, if its signature verifies with `public_key`; else why not.
    Does not look at the time (see `status_at`). Never raises."""
    if document is None or not document.strip():
        return Problem.NOT_CONFIGURED
    try:
        signed = parse_document(document)
    except MalformedLicense as exc:
        logger.warning("license document malformed: %s", exc)
        return Problem.MALFORMED
    if signed.algorithm not in ALGORITHMS:
        return Problem.UNSUPPORTED_ALGORITHM
    if public_key is None or not public_key.strip():
        return Problem.NO_PUBLIC_KEY
    try:
        signing.public_key(public_key)
    except signing.BadKey:
        return Problem.BAD_PUBLIC_KEY
    if not signing.verify(public_key, signed.payload, signed.signature):
        return Problem.BAD_SIGNATURE
    return signed.license


def status_at(checked: License | Problem, now: datetime) -> LicenseStatus:
    """The status at `now` (timezone-aware) of what `check_signature` found."""
    if isinstance(checked, Problem):
        return LicenseStatus(valid=False, reason=checked)
    problem = None
    if now < checked.issued_at:
        problem = Problem.NOT_YET_VALID
    elif now >= checked.expires_at:
        problem = Problem.EXPIRED
    features = checked.features if problem is None else ()
    return LicenseStatus(
        valid=problem is None,
        type=checked.type,
        expires_at=iso(checked.expires_at),
        features=features,
        quantum_verified=QUANTUM_HARDWARE in features,
        reason=problem,
        license_id=checked.id,
        licensee=checked.licensee,
    )


def verify_license(settings: Settings, now: datetime | None = None) -> LicenseStatus:
    """The status at `now` (default: the current time) of the license in `settings`. Never
    raises: a missing, malformed, unsigned, tampered, expired or not-yet-valid license is
    `valid=False` with its `reason`."""
    checked = check_signature(settings.license_document, settings.license_public_key)
    return status_at(checked, now or utcnow())


@lru_cache(maxsize=1)
def _loaded() -> License | Problem:
    settings = get_settings()
    checked = check_signature(settings.license_document, settings.license_public_key)
    _log(status_at(checked, utcnow()))
    return checked


def current() -> LicenseStatus:
    """This process's license status now. The document is parsed and its signature verified
    once per process, at the first call (logged once); the validity period is checked at every
    call, so a license that expires while the process runs is reported expired from then on."""
    return status_at(_loaded(), utcnow())


def reset() -> None:
    """Forget the verified license, so the next `current()` reads the settings again (tests)."""
    _loaded.cache_clear()


def _log(status: LicenseStatus) -> None:
    # Never the document, its signature or a key: the id, licensee and what it grants.
    if status.valid:
        logger.info(
            "license %r for %r verified: type %s, expires %s, features %s, quantum_verified %s",
            status.license_id,
            status.licensee,
            status.type,
            status.expires_at,
            ",".join(status.features) or "none",
            status.quantum_verified,
        )
    elif status.reason is Problem.NOT_CONFIGURED:
        logger.info("no license configured (QCOS_LICENSE): open features only")
    else:
        logger.warning(
            "license not valid (%s)%s: open features only",
            status.reason,
            f": {status.license_id!r}, expires {status.expires_at}" if status.license_id else "",
        )


# The operator's command: python -m shared.legal.license keygen | issue ...


def issue(
    key: Ed25519PrivateKey,
    *,
    licensee: str,
    license_type: str,
    expires_at: datetime,
    features: Sequence[str] = (),
    issued_at: datetime | None = None,
    license_id: str | None = None,
) -> dict[str, Any]:
    """A license document signed with `key`. Raises `MalformedLicense` for fields that
    `parse_document` would refuse (so an issued document always parses) and for a license
    that would expire before it is issued."""
    issued_at = issued_at or utcnow()
    payload: dict[str, Any] = {
        "id": license_id or f"lic_{uuid.uuid4().hex}",
        "licensee": licensee,
        "type": license_type,
        "issued_at": iso(issued_at),
        "expires_at": iso(expires_at),
        "features": list(dict.fromkeys(features)),
    }
    fields = _fields(payload)
    if fields.expires_at <= fields.issued_at:
        raise MalformedLicense("the license would expire before it is issued")
    return {
        "license": payload,
        "algorithm": signing.ALGORITHM,
        "signature": signing.sign(key, payload),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.legal.license", description="Make keys and issue licenses."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "keygen",
        help="print a new issuer key pair as JSON: private_key (keep it secret) and "
        "public_key (QCOS_LICENSE_PUBLIC_KEY), both base64 of 32 bytes",
    )
    cmd = commands.add_parser("issue", help="print a signed license document (QCOS_LICENSE)")
    cmd.add_argument(
        "--key", required=True, help="the issuer's private key (base64 seed), or - for stdin"
    )
    cmd.add_argument("--licensee", required=True)
    cmd.add_argument(
        "--type", required=True, dest="license_type", metavar="TYPE", help="e.g. enterprise"
    )
    cmd.add_argument("--expires", required=True, help="e.g. 2027-12-31T00:00:00Z")
    cmd.add_argument("--issued", help="default: now")
    cmd.add_argument("--feature", action="append", default=[], help="repeatable")
    cmd.add_argument("--id", dest="license_id", metavar="ID", help="default: lic_<random hex>")
    cmd.add_argument("--base64", action="store_true", help="print the document base64-encoded")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the operator's command; 0 on success, 2 for bad arguments (told on stderr)."""
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        key = signing.new_private_key()
        print(
            json.dumps(
                {"private_key": signing.seed_b64(key), "public_key": signing.public_b64(key)}
            )
        )
        return 0
    try:
        seed = sys.stdin.readline() if args.key == "-" else args.key
        document = issue(
            signing.private_key(seed),
            licensee=args.licensee,
            license_type=args.license_type,
            expires_at=_utc(args.expires, "--expires"),
            features=args.feature,
            issued_at=_utc(args.issued, "--issued") if args.issued else None,
            license_id=args.license_id,
        )
    except (signing.BadKey, MalformedLicense) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(document, separators=(",", ":"))
    print(base64.b64encode(text.encode()).decode("ascii") if args.base64 else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
