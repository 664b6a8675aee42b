"""Users and their API keys: create, authenticate, look up.

Rows (Table Storage):
- `users`: PartitionKey = user id, RowKey `profile` (email, tier, created_at); and
  PartitionKey `email-<sha256 of the address>`, RowKey `email` (the user id), which makes an
  email address unique through a conditional insert.
- `apikeys`: PartitionKey = the key's public id, RowKey `key` (user id, tier, hash, revoked).
  Authentication is one point read; the tier is copied there so a request needs no second read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from shared import clock
from shared.accounts import keys
from shared.accounts.tiers import Tier, TierName, tier
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized
from shared.storage import Storage, get_or_none, insert_new
from shared.storage.clients import API_KEYS_TABLE, USERS_TABLE

logger = logging.getLogger(__name__)

_PROFILE = "profile"
_KEY_ROW = "key"
# Hashed when a key's public id is unknown, so that case costs what a wrong secret costs.
_CACHE_MAX = 10_000
_USER_ID = re.compile(r"^u_[0-9a-f]{16}$")
_DUMMY_HASH = keys.hash_key("qcos_0000000000000000_" + "0" * 43)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (with the key's public id, for logs) or the admin."""

    user_id: str
    tier: Tier
    key_id: str
    is_admin: bool = False


ADMIN = Principal(user_id="admin", tier=tier("enterprise"), key_id="admin", is_admin=True)


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    tier: TierName
    created_at: str


@dataclass(frozen=True)
class CreatedUser:
    user: User
    api_key: str  # shown once, never stored


def _email_partition(email: str) -> str:
    return "email-" + hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


class Accounts:
    def __init__(
        self, storage: Storage, admin_api_key: str | None, *, cache_seconds: float = 0.0
    ) -> None:
        self._storage = storage
        self._admin_hash = keys.hash_key(admin_api_key) if admin_api_key else None
        # Valid keys seen lately (by hash): a request then costs no storage read. A revoked
        # key keeps working for at most `cache_seconds` in each instance that cached it.
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()

    def authenticate(self, presented: str | None, *, admin: bool = False) -> Principal:
        """The principal for `presented`.

        Raises `Unauthorized` (the same for missing, malformed, unknown and revoked keys) and,
        when `admin` is set, `Forbidden` for a valid user key. The admin key is accepted only
        where `admin` is set; elsewhere it is `Forbidden` too (it owns no jobs).
        """
        if not presented:
            raise Unauthorized()
        digest = keys.hash_key(presented)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            if admin:
                return ADMIN
            raise Forbidden("The admin key is for /admin routes; use a user's API key here")
        principal = self._cached(digest)
        if principal is None:
            principal = self._lookup(presented)
        if admin:
            raise Forbidden("This route needs the admin key")
        return principal

    def _cached(self, digest: str) -> Principal | None:
        if self._cache_seconds <= 0:
            return None
        entry = self._cache.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def _lookup(self, presented: str) -> Principal:
        key_id = keys.public_id(presented)
        row = get_or_none(self._table(API_KEYS_TABLE), key_id, _KEY_ROW) if key_id else None
        if key_id is None or row is None or row.get("revoked"):
            keys.matches(presented, _DUMMY_HASH)
            raise Unauthorized()
        if not keys.matches(presented, str(row["key_hash"])):
            raise Unauthorized()
        principal = Principal(
            user_id=str(row["user_id"]), tier=tier(str(row["tier"])), key_id=key_id
        )
        if self._cache_seconds > 0:
            with self._cache_lock:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[str(row["key_hash"])] = (
                    time.monotonic() + self._cache_seconds,
                    principal,
                )
        return principal

    def create_user(self, email: str, tier_name: TierName) -> CreatedUser:
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
                "created_at": user.created_at,
            }
            users.create_entity(entity=profile)
            written.append((users, profile))
            new_key = keys.generate()
            self._table(API_KEYS_TABLE).create_entity(
                entity={
                    "PartitionKey": new_key.key_id,
                    "RowKey": _KEY_ROW,
                    "user_id": user.user_id,
                    "tier": user.tier.value,
                    "key_hash": new_key.key_hash,
                    "created_at": user.created_at,
                    "revoked": False,
                }
            )
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
        return User(
            user_id=user_id,
            email=str(row["email"]),
            tier=TierName(str(row["tier"])),
            created_at=str(row["created_at"]),
        )

    def _table(self, name: str) -> Any:
        return self._storage.table(name)
