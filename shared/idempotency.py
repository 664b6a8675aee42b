"""`Idempotency-Key` on the POSTs that create jobs: a retried request replays the first answer.

One row per user and key in table `idempotency` (PartitionKey = user id, RowKey = SHA-256 of
the key, so any key text is safe and keys are scoped per user). The first request inserts the
row `pending` (a conditional insert: of two racing requests one wins), runs, then stores its
answer in the row (or, when large, in a blob beside the results). Then:

- the same key and the same request (method, path and body bytes): the stored answer again,
  with `Idempotent-Replayed: true`;
- the same key and another request: 422 IDEMPOTENCY_KEY_REUSED;
- the same key while the first is still being handled: 409 IDEMPOTENCY_KEY_IN_USE.

Only answers that are final are kept: a 5xx, or an answer that says to retry later
(`Retry-After`: a quota, a rate limit), removes the row so the retry runs afresh. A `pending`
row whose request died is taken over after `lock_seconds`. Keys are kept `ttl_hours`; the
recovery timer sweeps expired rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared import clock
from shared.errors import BadRequest, Conflict, ValidationFailed
from shared.storage import Storage, get_or_none, insert_new, merge_if_match
from shared.storage.clients import IDEMPOTENCY_TABLE, RESULTS_CONTAINER

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft's examples
_INLINE_MAX = 30_000  # characters kept in the row (a string property holds 32K UTF-16 units)
_KEPT_HEADERS = ("Location", "Retry-After")


@dataclass(frozen=True)
class Claim:
    """This request owns the key: answer it, then `finish` or `abandon`."""

    user_id: str
    row_key: str
    etag: str


@dataclass(frozen=True)
class Stored:
    """The first request's answer, to replay."""

    status: int
    body: str
    media_type: str
    headers: dict[str, str]


class Idempotency:
    def __init__(self, storage: Storage, *, ttl_hours: int = 24, lock_seconds: int = 300) -> None:
        self._storage = storage
        self._ttl = timedelta(hours=ttl_hours)
        self._lock = timedelta(seconds=lock_seconds)

    @staticmethod
    def check_key(key: str) -> None:
        if not _KEY.match(key):
            raise BadRequest(
                f"{HEADER} must be 1 to 255 visible ASCII characters",
                error_code="INVALID_IDEMPOTENCY_KEY",
            )

    def begin(self, user_id: str, key: str, fingerprint: str) -> Claim | Stored:
        """Claim `key` for this request, or the answer to replay. Raises
        `ValidationFailed(IDEMPOTENCY_KEY_REUSED)` (422) when the key was used for another
        request and `Conflict(IDEMPOTENCY_KEY_IN_USE)` (409) while the first is handled."""
        self.check_key(key)
        row_key = hashlib.sha256(key.encode("utf-8")).hexdigest()
        for _ in range(4):
            now = clock.utcnow()
            pending = {
                "PartitionKey": user_id,
                "RowKey": row_key,
                "fingerprint": fingerprint,
                "state": "pending",
                "created_at": clock.iso(now),
                "expires_at": clock.iso(now + self._ttl),
                "locked_until": clock.iso(now + self._lock),
            }
            etag = insert_new(self._table, pending)  # a new key: the usual case, one write
            if etag is not None:
                return Claim(user_id, row_key, etag)
            row = get_or_none(self._table, user_id, row_key)
            if row is None:
                continue  # removed in between: try again
            expired = str(row["expires_at"]) <= clock.iso(now)
            if not expired and row["fingerprint"] != fingerprint:
                raise ValidationFailed(
                    f"This {HEADER} was used for another request; use a new key",
                    error_code="IDEMPOTENCY_KEY_REUSED",
                )
            if not expired and row["state"] == "done":
                return self._stored(row)
            if not expired and str(row["locked_until"]) > clock.iso(now):
                raise _in_use()
            # expired, or its request died: take it over (conditionally, against a racer)
            etag = merge_if_match(self._table, pending, row.metadata["etag"])
            if etag is not None:
                return Claim(user_id, row_key, etag)
        raise _in_use()

    @staticmethod
    def keeps(status: int, headers: dict[str, str]) -> bool:
        """True for an answer that is final (kept for replays)."""
        return status < 500 and "Retry-After" not in headers

    def finish(
        self, claim: Claim, status: int, body: str, media_type: str, headers: dict[str, str]
    ) -> None:
        """Keep the answer for replays (when `keeps`), else free the key. Never raises: the
        answer has been made; a failure here only costs the replay (logged)."""
        try:
            if not self.keeps(status, headers):
                self.abandon(claim)
                return
            kept = {k: v for k, v in headers.items() if k in _KEPT_HEADERS}
            entity: dict[str, Any] = {
                "PartitionKey": claim.user_id,
                "RowKey": claim.row_key,
                "state": "done",
                "status": status,
                "media_type": media_type,
                "headers": json.dumps(kept),
            }
            if len(body) <= _INLINE_MAX:
                entity["body"] = body
            else:
                blob = f"idempotency/{claim.user_id}/{claim.row_key}.txt"
                self._blobs.upload_blob(blob, body.encode("utf-8"), overwrite=True)
                entity["body_blob"] = blob
            if merge_if_match(self._table, entity, claim.etag) is None:
                logger.warning("idempotency key of %s taken over before it was kept", claim.user_id)
        except Exception as exc:
            logger.warning("idempotency answer not kept: %s", type(exc).__name__)

    def abandon(self, claim: Claim) -> None:
        """Free the key (the request may be retried with it). Never raises."""
        from azure.core import MatchConditions

        try:
            self._table.delete_entity(
                partition_key=claim.user_id,
                row_key=claim.row_key,
                etag=claim.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except Exception as exc:  # expires on its own
            logger.warning("idempotency key not freed: %s", type(exc).__name__)

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to `limit` expired keys (every user's); returns how many."""
        query = f"expires_at lt '{clock.now_iso()}'"
        removed = 0
        for row in self._table.query_entities(query, select=["PartitionKey", "RowKey"]):
            if removed >= limit:
                break
            try:
                self._table.delete_entity(partition_key=row["PartitionKey"], row_key=row["RowKey"])
                removed += 1
            except ResourceNotFoundError:
                pass
        return removed

    def _stored(self, row: Any) -> Stored:
        body = row.get("body")
        if body is None and row.get("body_blob"):
            body = self._blobs.download_blob(str(row["body_blob"])).readall().decode("utf-8")
        return Stored(
            status=int(row["status"]),
            body=str(body or ""),
            media_type=str(row.get("media_type") or "application/json"),
            headers=dict(json.loads(row.get("headers") or "{}")),
        )

    @property
    def _table(self) -> Any:
        return self._storage.table(IDEMPOTENCY_TABLE)

    @property
    def _blobs(self) -> Any:
        return self._storage.container(RESULTS_CONTAINER)


def _in_use() -> Conflict:
    return Conflict(
        f"A request with this {HEADER} is still being handled; retry shortly",
        error_code="IDEMPOTENCY_KEY_IN_USE",
        headers={"Retry-After": "1"},
    )


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    digest = hashlib.sha256(f"{method.upper()} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()
