"""The signature scheme softqcos-sdk's `WebhooksAPI.verify_signature` checks:
`X-QCOS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-QCOS-Signature"
TOLERANCE_SECONDS = 300


def _digest(secret: str, timestamp: int, body: str) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, body: str, timestamp: int | None = None) -> str:
    """The header's value for `body` sent at `timestamp` (now when None)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, t, body)}"


def verify(
    secret: str,
    body: str,
    header: str,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` signs `body` with `secret` within `tolerance` seconds of `now`."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
        fresh = abs((time.time() if now is None else now) - t) <= tolerance
        return hmac.compare_digest(_digest(secret, t, body), parts["v1"]) and fresh
    except (KeyError, ValueError):
        return False
