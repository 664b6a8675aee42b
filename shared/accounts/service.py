"""Users and their API keys: create, authenticate (with the key's rate limit), administer.

Rows (Table Storage):
- `users`: PartitionKey = user id, RowKey `profile` (email, tier, tenant, created_at); and
  PartitionKey `email-<sha256 of the address>`, RowKey `email` (the user id), which makes an
  email address unique through a conditional insert.
- `apikeys`: PartitionKey = the key's public id, RowKey `key` (user id, tier, tenant, hash,
  revoked) and RowKey `rate` (the key's rate-limit counter, leased: `ratelimit`). The user's
  tier and tenant are copied onto each key, so verifying a key is one partition read (key and
  counter together).

A verified key is kept in memory for `KEY_CACHE_SECONDS` (5 s): a warm instance answers a
known key without reading storage. The instance that revokes a key or changes a user's tier
or tenant forgets that user's keys at once; every other instance within `KEY_CACHE_SECONDS`.
Only keys whose secret matched the stored hash are kept, under their public id with their
hash, so a wrong secret for a kept id is still refused (constant-time compare).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from shared import clock
from shared.accounts import keys
from shared.accounts.ratelimit import RATE_ROW, Decision, RateLimiter
from shared.accounts.tiers import Tier, TierName, tier
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized
from shared.storage import Storage, get_or_none, insert_new, merge
from shared.storage.clients import API_KEYS_TABLE, USERS_TABLE
from shared.storage.query import literal, page

logger = logging.getLogger(__name__)

_PROFILE = "profile"
_KEY_ROW = "key"
_USER_ID = re.compile(r"^u_[0-9a-f]{16}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
KEY_CACHE_SECONDS = 5.0  # how long another instance may still honour a revoked key
_KEYS_KEPT = 10_000
# Hashed when a key's public id is unknown, so that case costs what a wrong secret costs.
_DUMMY_HASH = keys.hash_key("qcos_0000000000000000_" + "0" * 43)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (with the key's public id, for logs) or the admin."""

    user_id: str
    tier: Tier
    key_id: str
    is_admin: bool = False
    tenant: str = ""  # "" when the user belongs to no tenant


ADMIN = Principal(user_id="admin", tier=tier("enterprise"), key_id="admin", is_admin=True)


@dataclass(frozen=True)
class Admission:
    """An authenticated caller and, for a user's key, the rate-limit decision it counted."""

    principal: Principal
    rate: Decision | None = None


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    tier: TierName
    created_at: str
    tenant: str = ""


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    created_at: str
    revoked: bool


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    next_cursor: str | None


@dataclass(frozen=True)
class CreatedUser:
    user: User
    api_key: str  # shown once, never stored


def _user(row: Any) -> User:
    return User(
        user_id=str(row["PartitionKey"]),
        email=str(row["email"]),
        tier=TierName(str(row["tier"])),
        created_at=str(row["created_at"]),
        tenant=str(row.get("tenant") or ""),
    )


def _email_partition(email: str) -> str:
    return "email-" + hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Verified:
    """A key verified against its row: who it is, its hash, and until when to trust it."""

    principal: Principal
    key_hash: str
    until: float  # time.monotonic()


class Accounts:
    def __init__(self, storage: Storage, admin_api_key: str | None) -> None:
        self._storage = storage
        self._admin_hash = keys.hash_key(admin_api_key) if admin_api_key else None
        self._rates = RateLimiter(storage)
        self._verified: dict[str, _Verified] = {}
        self._verified_lock = threading.Lock()

    def admit(
        self, presented: str | None, *, admin: bool = False, admin_allowed: bool = False
    ) -> Admission:
        """The caller presenting `presented`, with its request counted against the key's
        rate limit (the admin key is not limited).

        Raises `Unauthorized` (the same for missing, malformed, unknown and revoked keys);
        `Forbidden` for a user key where `admin` is required, and for the admin key where
        neither `admin` nor `admin_allowed` is set (it owns no jobs); `RateLimited` (429)
        over the key's limit.
        """
        if not presented:
            raise Unauthorized()
        digest = keys.hash_key(presented)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            if admin or admin_allowed:
                return Admission(ADMIN)
            raise Forbidden("The admin key is for /admin routes; use a user's API key here")
        principal = self._principal(presented, digest)
        if admin:
            raise Forbidden("This route needs the admin key")
        decision = self._rates.decide(principal.key_id, principal.tier.requests_per_minute)
        if not decision.allowed:
            raise decision.refusal()
        return Admission(principal, decision)

    def authenticate(self, presented: str | None, *, admin: bool = False) -> Principal:
        """`admit`'s principal."""
        return self.admit(presented, admin=admin).principal

    def _principal(self, presented: str, digest: str) -> Principal:
        """The key's principal: from memory when verified within `KEY_CACHE_SECONDS`, else
        from one read of the key's partition (`digest`: the presented key's hash)."""
        key_id = keys.public_id(presented)
        known = self._verified.get(key_id) if key_id is not None else None
        if known is not None and known.until > time.monotonic():
            if not hmac.compare_digest(digest, known.key_hash):
                raise Unauthorized()
            return known.principal
        principal, rate_row = self._lookup(presented, digest)
        self._rates.seen(principal.key_id, principal.tier.requests_per_minute, rate_row)
        with self._verified_lock:
            if len(self._verified) >= _KEYS_KEPT:
                self._verified.clear()
            self._verified[principal.key_id] = _Verified(
                principal, digest, time.monotonic() + KEY_CACHE_SECONDS
            )
        return principal

    def _forget(self, key_ids: list[str]) -> None:
        """Drop keys from this instance's memory: their next request reads storage."""
        with self._verified_lock:
            for key_id in key_ids:
                self._verified.pop(key_id, None)

    def _lookup(self, presented: str, digest: str) -> tuple[Principal, Any | None]:
        """The key's principal and its rate row, from one read of the key's partition
        (`digest`: the presented key's hash)."""
        key_id = keys.public_id(presented)
        rows = {}
        if key_id is not None:
            query = f"PartitionKey eq '{key_id}'"  # a checked hex id
            rows = {r["RowKey"]: r for r in self._table(API_KEYS_TABLE).query_entities(query)}
        row = rows.get(_KEY_ROW)
        if key_id is None or row is None or row.get("revoked"):
            hmac.compare_digest(digest, _DUMMY_HASH)  # costs what a wrong secret costs
            raise Unauthorized()
        if not hmac.compare_digest(digest, str(row["key_hash"])):
            raise Unauthorized()
        principal = Principal(
            user_id=str(row["user_id"]),
            tier=tier(str(row["tier"])),
            key_id=key_id,
            tenant=str(row.get("tenant") or ""),
        )
        return principal, rows.get(RATE_ROW)

    def create_user(self, email: str, tier_name: TierName, tenant: str = "") -> CreatedUser:
        """Create a user and their first API key.

        Raises `Conflict(EMAIL_EXISTS)` when the address is taken. A failure part-way removes
        what was written, so a retry starts clean.
        """
        users = self._table(USERS_TABLE)
        user = User(
            user_id="u_" + secrets.token_hex(8),
            email=email.strip(),
            tier=tier_name,
            created_at=clock.now_iso(),
            tenant=tenant,
        )
        email_row = {
            "PartitionKey": _email_partition(user.email),
            "RowKey": "email",
            "user_id": user.user_id,
        }
        if insert_new(users, email_row) is None:
            raise Conflict("A user with this email already exists", error_code="EMAIL_EXISTS")
        written: list[tuple[Any, dict[str, Any]]] = [(users, email_row)]
        try:
            profile = {
                "PartitionKey": user.user_id,
                "RowKey": _PROFILE,
                "email": user.email,
                "tier": user.tier.value,
                "tenant": user.tenant,
                "created_at": user.created_at,
            }
            users.create_entity(entity=profile)
            written.append((users, profile))
            new_key = self._new_key(user)
        except Exception:
            for table, row in reversed(written):
                try:
                    table.delete_entity(partition_key=row["PartitionKey"], row_key=row["RowKey"])
                except Exception:  # the outage that failed the write may fail this too
                    logger.warning("could not roll back %s/%s", row["PartitionKey"], row["RowKey"])
            raise
        logger.info("created user %s (tier %s, key %s)", user.user_id, user.tier, new_key.key_id)
        return CreatedUser(user=user, api_key=new_key.secret_key)

    def get_user(self, user_id: str) -> User:
        """The user, or `NotFound(USER_NOT_FOUND)`."""
        valid = _USER_ID.match(user_id)
        row = get_or_none(self._table(USERS_TABLE), user_id, _PROFILE) if valid else None
        if row is None:
            raise NotFound(f"User {user_id} not found", error_code="USER_NOT_FOUND")
        return _user(row)

    # -- administration -------------------------------------------------------------------------

    def list_users(
        self,
        *,
        tier_name: TierName | None = None,
        tenant: str | None = None,
        page_size: int = 50,
        cursor: str | None = None,
    ) -> UserPage:
        """A page of users (by user id), optionally of one tier or tenant; `next_cursor` gives
        the next page. Raises `ValidationFailed` for a cursor this did not make."""
        query = f"RowKey eq '{_PROFILE}'"
        if tier_name is not None:
            query += f" and tier eq '{tier_name.value}'"
        if tenant is not None:
            query += " and tenant eq " + literal(tenant)
        rows, next_cursor = page(self._table(USERS_TABLE), query, page_size, cursor)
        return UserPage([_user(row) for row in rows], next_cursor)

    def update_user(
        self, user_id: str, *, tier_name: TierName | None = None, tenant: str | None = None
    ) -> User:
        """Change a user's tier and/or tenant. The profile is written first, then every key
        (what requests read): both count from the user's next request. A failure part-way
        is finished by repeating the call. This instance forgets the user's keys at once;
        other instances within `KEY_CACHE_SECONDS`."""
        user = self.get_user(user_id)
        changes: dict[str, Any] = {}
        if tier_name is not None:
            changes["tier"] = tier_name.value
        if tenant is not None:
            changes["tenant"] = tenant
        if not changes:
            return user
        merge(self._table(USERS_TABLE), {"PartitionKey": user_id, "RowKey": _PROFILE, **changes})
        key_ids = [str(row["PartitionKey"]) for row in self._key_rows(user_id)]
        try:
            for key_id in key_ids:
                merge(
                    self._table(API_KEYS_TABLE),
                    {"PartitionKey": key_id, "RowKey": _KEY_ROW, **changes},
                )
        finally:
            self._forget(key_ids)
        logger.info("user %s changed: %s", user_id, ", ".join(sorted(changes)))
        return replace(
            user,
            tier=TierName(changes.get("tier", user.tier)),
            tenant=changes.get("tenant", user.tenant),
        )

    def issue_key(self, user_id: str) -> tuple[KeyInfo, str]:
        """Another API key for the user (their other keys keep working): (its info, the key,
        shown once)."""
        user = self.get_user(user_id)
        new_key = self._new_key(user)
        logger.info("issued key %s to %s", new_key.key_id, user_id)
        return KeyInfo(new_key.key_id, clock.now_iso(), False), new_key.secret_key

    def list_keys(self, user_id: str) -> list[KeyInfo]:
        self.get_user(user_id)
        return sorted(
            (
                KeyInfo(
                    key_id=str(row["PartitionKey"]),
                    created_at=str(row.get("created_at", "")),
                    revoked=bool(row.get("revoked")),
                )
                for row in self._key_rows(user_id)
            ),
            key=lambda k: (k.created_at, k.key_id),
        )

    def revoke_key(self, user_id: str, key_id: str) -> KeyInfo:
        """Revoke one of the user's keys: refused from the next request on this instance, and
        within `KEY_CACHE_SECONDS` on every other.
        Raises `NotFound(KEY_NOT_FOUND)` for a key that is not the user's."""
        self.get_user(user_id)
        table = self._table(API_KEYS_TABLE)
        row = get_or_none(table, key_id, _KEY_ROW) if _KEY_ID.match(key_id) else None
        if row is None or row.get("user_id") != user_id:
            raise NotFound(f"Key {key_id} not found for user {user_id}", error_code="KEY_NOT_FOUND")
        merge(table, {"PartitionKey": key_id, "RowKey": _KEY_ROW, "revoked": True})
        self._forget([key_id])
        logger.info("revoked key %s of %s", key_id, user_id)
        return KeyInfo(key_id, str(row.get("created_at", "")), True)

    def _key_rows(self, user_id: str) -> Iterator[Any]:
        query = f"RowKey eq '{_KEY_ROW}' and user_id eq " + literal(user_id)
        yield from self._table(API_KEYS_TABLE).query_entities(query)

    def _new_key(self, user: User) -> keys.NewKey:
        new_key = keys.generate()
        self._table(API_KEYS_TABLE).create_entity(
            entity={
                "PartitionKey": new_key.key_id,
                "RowKey": _KEY_ROW,
                "user_id": user.user_id,
                "tier": user.tier.value,
                "tenant": user.tenant,
                "key_hash": new_key.key_hash,
                "created_at": clock.now_iso(),
                "revoked": False,
            }
        )
        return new_key

    def _table(self, name: str) -> Any:
        return self._storage.table(name)
