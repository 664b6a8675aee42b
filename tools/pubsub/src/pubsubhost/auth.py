"""The three secrets checks, each as Azure does them with an access key.

- Client connections carry a JWT (query `access_token` or `Authorization: Bearer`), HS256
  with the access key, `aud` = `{endpoint}/client/hubs/{hub}` (the SDK lowercases the
  endpoint), `exp`; `sub` is the user id, `role` and `webpubsub.group` a string or a list.
- REST calls carry `Authorization: Bearer <JWT>`, HS256 with the access key, `aud` = the
  request URL (the SDK signs the whole URL, query included), `exp` 60 s ahead.
- Events to an upstream carry `ce-signature: sha256=<hex HMAC-SHA256(accessKey, connectionId)>`.

An audience is checked on its path and on its host, which must be the one the request
came to (its Host header) or this service's own endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

LEEWAY_SECONDS = 5


class AuthError(Exception):
    """Refused; the message is safe to return to the caller."""


@dataclass(frozen=True)
class ClientIdentity:
    user_id: str | None
    roles: frozenset[str]
    groups: tuple[str, ...]
    claims: dict[str, list[str]]


def signature(access_key: str, connection_id: str) -> str:
    digest = hmac.new(access_key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _decode(token: str, access_key: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            access_key,
            algorithms=["HS256"],
            options={"require": ["exp"], "verify_aud": False},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the access token has expired") from None
    except jwt.InvalidTokenError as error:
        raise AuthError(f"invalid access token: {error}") from None
    return claims


def _audience_matches(aud: Any, path: str, hosts: set[str]) -> bool:
    for candidate in _strings(aud):
        parts = urlsplit(candidate)
        if parts.scheme not in ("http", "https", "ws", "wss"):
            continue
        same_path = unquote(parts.path).rstrip("/").lower() == unquote(path).rstrip("/").lower()
        if same_path and parts.netloc.lower() in hosts:
            return True
    return False


def verify_client_token(token: str, access_key: str, hub: str, hosts: set[str]) -> ClientIdentity:
    claims = _decode(token, access_key)
    if not _audience_matches(claims.get("aud"), f"/client/hubs/{hub}", hosts):
        raise AuthError("the access token is not for this hub")
    users = _strings(claims.get("sub"))
    if len(users) > 1:
        raise AuthError("only one sub claim is allowed")
    reserved = {"aud", "exp", "iat", "nbf"}
    return ClientIdentity(
        user_id=users[0] if users else None,
        roles=frozenset(_strings(claims.get("role"))),
        groups=tuple(_strings(claims.get("webpubsub.group"))),
        claims={k: _strings(v) for k, v in claims.items() if k not in reserved},
    )


def verify_rest_token(
    authorization: str | None, access_key: str, path: str, hosts: set[str]
) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("a Bearer token is required")
    claims = _decode(token.strip(), access_key)
    if not _audience_matches(claims.get("aud"), path, hosts):
        raise AuthError("the token's audience is not this URL")
