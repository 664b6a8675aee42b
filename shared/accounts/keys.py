"""API keys: `qcos_<public id>_<secret>`.

The secret is 256 random bits. Only a SHA-256 hash of the whole key is stored (a slow hash adds
nothing for a 256-bit random secret) and it is compared in constant time. The public id is what
logs and lookups use; it reveals nothing about the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "qcos"
_KEY_RE = re.compile(r"^qcos_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str  # public id
    secret_key: str  # the whole key, shown once
    key_hash: str


def generate() -> NewKey:
    """A fresh key with its public id and the hash to store."""
    key_id = secrets.token_hex(8)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id=key_id, secret_key=key, key_hash=hash_key(key))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def public_id(key: str) -> str | None:
    """The public id of a well-formed key, or None for anything else."""
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def matches(key: str, stored_hash: str) -> bool:
    """True when `key` hashes to `stored_hash`, compared in constant time."""
    return hmac.compare_digest(hash_key(key), stored_hash)
