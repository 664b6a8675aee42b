"""Ed25519 signatures over canonical JSON: the one way the app signs and checks documents
(ledger evidence bundles, the deployment's license).

Keys travel as base64 of their 32 raw bytes (a private key as its seed). Canonical JSON is
sorted keys, no spaces, UTF-8: the same object always gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"


class BadKey(ValueError):
    """A key is not base64 of 32 bytes."""


def canonical(document: Any) -> bytes:
    """The bytes that are hashed and signed for `document`."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadKey(f"{what} is not valid base64") from exc
    if len(raw) != 32:
        raise BadKey(f"{what} must be 32 bytes (base64), not {len(raw)}")
    return raw


def private_key(seed_b64: str) -> Ed25519PrivateKey:
    """The private key whose seed is `seed_b64`; raises `BadKey`."""
    return Ed25519PrivateKey.from_private_bytes(_raw(seed_b64, "the private key"))


def public_key(public_key_b64: str) -> Ed25519PublicKey:
    """The public key `public_key_b64` names; raises `BadKey`."""
    return Ed25519PublicKey.from_public_bytes(_raw(public_key_b64, "the public key"))


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def seed_b64(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode("ascii")


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(key: Ed25519PrivateKey, document: Any) -> str:
    """The base64 signature of `document`'s canonical bytes."""
    return base64.b64encode(key.sign(canonical(document))).decode("ascii")


def verify(public_key_b64: str, document: Any, signature_b64: str) -> bool:
    """True only when `signature_b64` is `document`'s signature by `public_key_b64`'s owner.
    A malformed key or signature is False, never an exception."""
    try:
        public = public_key(public_key_b64)
        signature = base64.b64decode(signature_b64, validate=True)
        public.verify(signature, canonical(document))
    except (BadKey, InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True
