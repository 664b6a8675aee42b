"""`Idempotency-Key` on the POSTs that create jobs: a retried request replays the first answer,
or finds the job the first attempt made.

One row per user and key in table `idempotency` (PartitionKey = user id, RowKey = SHA-256 of
the key, so any key text is safe and keys are scoped per user). The first request inserts the
row `pending` (a conditional insert: of two racing requests one wins), runs, then stores its
answer in the row (or, when large, in a blob beside the results). Then:

- the same key and the same request (method, path and body bytes): the stored answer again,
  with `Idempotent-Replayed: true`;
- the same key and another request: 422 IDEMPOTENCY_KEY_REUSED;
- the same key while the first is still being handled: the job it made, if it exists yet
  (see below), else 409 IDEMPOTENCY_KEY_IN_USE.

Every attempt under one use of a key gives its job the same id, `Claim.job_id` (a UUID derived
from the user, the key and the row's `created_at`, which a take-over keeps), unless the body
names one. So an attempt that finds the key `pending` (its first request died after making the
job, or is still running, or failed) can look the job up: if it exists, the answer comes from
it; and a racing attempt can never make a second job (the job row's insert is conditional,
`DUPLICATE_JOB_ID`). Locks only keep two attempts from running the same work at once; they
never decide how many jobs exist.

Only answers that are final are kept: a 5xx, or an answer that says to retry later
(`Retry-After`: a quota, a rate limit), unlocks the row (it stays `pending`, so the job id
stays the same) and the retry runs at once. Bounds on a key left `pending`:

- lock: a `pending` row whose request died (no job made) refuses others for `lock_seconds`
  after that request began (by default 75 s: the in-request run's bound,
  `sync_timeout_seconds` = 60, plus a 15 s margin for the storage writes after it), then is
  taken over;
- outage: when storage fails while a 5xx is unlocking the key, this process remembers the
  claim (in memory, at most `_MAX_UNRELEASED` of them) and takes its row over at the next
  attempt, at once, once storage answers again; another instance waits out the lock (the
  bound above). A process that restarts forgets, and likewise waits out the lock.

Keys are kept `ttl_hours`; the recovery timer sweeps expired rows. A use of an expired key is a
new use: a new `created_at`, so a new job id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from azure.core.exceptions import ResourceNotFoundError

from shared import clock
from shared.errors import BadRequest, Conflict, ValidationFailed
from shared.storage import (
    LOST,
    Lost,
    Storage,
    get_or_none,
    insert_new,
    merge_if_match,
    until_written,
)
from shared.storage.clients import IDEMPOTENCY_TABLE, RESULTS_CONTAINER

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as the IETF draft's examples
_INLINE_MAX = 30_000  # characters kept in the row (a string property holds 32K UTF-16 units)
_KEPT_HEADERS = ("Location", "Retry-After")
_JOB_NAMESPACE = uuid.UUID("2b7c4f0e-5d1a-4c8e-9f3b-7a6d2e1c0b94")
# A pending key's lock beyond the longest a request runs (`sync_timeout_seconds`): the writes
# that record its job come after the run.
LOCK_MARGIN_SECONDS = 15
_MAX_UNRELEASED = 4096  # claims remembered as unlocked though storage failed (about 200 B each)


@dataclass(frozen=True)
class Claim:
    """The key's `pending` row as this request found it: answer, then `finish`.

    `job_id` is the id this request's job must have when the body names none. `owned`: this
    request holds the lock; when False another request holds it (it may still be running)
    and this one may only answer from the job that one made, else `in_use()`. `resumed`: the
    row was `pending` already, so an earlier attempt may have made the job.
    """

    user_id: str
    row_key: str
    etag: str
    job_id: str
    owned: bool = True
    resumed: bool = False


@dataclass(frozen=True)
class Stored:
    """The first request's answer, to replay."""

    status: int
    body: str
    media_type: str
    headers: dict[str, str]


class Idempotency:
    def __init__(
        self,
        storage: Storage,
        *,
        ttl_hours: int = 24,
        lock_seconds: int = 60 + LOCK_MARGIN_SECONDS,
    ) -> None:
        """`lock_seconds`: how long a request may run before another attempt takes its key
        over; `sync_timeout_seconds + LOCK_MARGIN_SECONDS` (the default is for 60 s)."""
        self._storage = storage
        self._ttl = timedelta(hours=ttl_hours)
        self._lock = timedelta(seconds=lock_seconds)
        self._unreleased: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._unreleased_lock = threading.Lock()

    @staticmethod
    def check_key(key: str) -> None:
        if not _KEY.fullmatch(key):
            raise BadRequest(
                f"{HEADER} must be 1 to 255 visible ASCII characters",
                error_code="INVALID_IDEMPOTENCY_KEY",
            )

    def begin(self, user_id: str, key: str, fingerprint: str) -> Claim | Stored:
        """Claim `key` for this request, or the answer to replay. Raises
        `ValidationFailed(IDEMPOTENCY_KEY_REUSED)` (422) when the key was used for another
        request. A key another request holds (within its lock) gives a claim not `owned`;
        `in_use()` when racers keep changing the row."""
        self.check_key(key)
        row_key = hashlib.sha256(key.encode("utf-8")).hexdigest()

        def attempt(n: int) -> Claim | Stored | Lost:
            now = clock.utcnow()
            created_at = clock.iso(now)
            locked_until = clock.iso(now + self._lock)
            pending = {
                "PartitionKey": user_id,
                "RowKey": row_key,
                "fingerprint": fingerprint,
                "state": "pending",
                "created_at": created_at,
                "expires_at": clock.iso(now + self._ttl),
                "locked_until": locked_until,
            }
            etag = insert_new(self._table, pending)  # a new key: the usual case, one write
            if etag is not None:
                return Claim(user_id, row_key, etag, _job_id(user_id, row_key, created_at))
            row = get_or_none(self._table, user_id, row_key)
            if row is None:
                return LOST  # removed in between: try again
            read_etag = str(row.metadata["etag"])
            if str(row["expires_at"]) <= clock.iso(now):  # a new use of an old key
                etag = merge_if_match(self._table, pending, read_etag)
                if etag is not None:
                    return Claim(user_id, row_key, etag, _job_id(user_id, row_key, created_at))
                return LOST
            if row["fingerprint"] != fingerprint:
                raise ValidationFailed(
                    f"This {HEADER} was used for another request; use a new key",
                    error_code="IDEMPOTENCY_KEY_REUSED",
                )
            if row["state"] == "done":
                return self._stored(row)
            # pending: an earlier attempt made this row; its job, if any, has this id
            job_id = _job_id(user_id, row_key, str(row["created_at"]))
            if str(row["locked_until"]) > clock.iso(now) and not self._forgets(
                user_id, row_key, read_etag
            ):
                return Claim(user_id, row_key, read_etag, job_id, owned=False, resumed=True)
            # its request died, failed, or failed to unlock it here: take it over (against a
            # racer), keeping `created_at` and so the job id
            lock = {"PartitionKey": user_id, "RowKey": row_key, "locked_until": locked_until}
            etag = merge_if_match(self._table, lock, read_etag)
            if etag is None:
                return LOST
            return Claim(user_id, row_key, etag, job_id, resumed=True)

        # mypy cannot take a union of two apart from `Lost` by itself
        return cast("Claim | Stored", until_written(attempt, busy=in_use, tries=4))

    @staticmethod
    def keeps(status: int, headers: dict[str, str]) -> bool:
        """True for an answer that is final (kept for replays)."""
        return status < 500 and "Retry-After" not in headers

    def finish(
        self, claim: Claim, status: int, body: str, media_type: str, headers: dict[str, str]
    ) -> None:
        """Keep the answer for replays (when `keeps`, and the row is still as `claim` found
        it), else unlock the key (when `owned`). Never raises: the answer has been made; a
        failure here only costs the replay (logged)."""
        try:
            if not self.keeps(status, headers):
                if claim.owned:
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
            blob = None
            if len(body) <= _INLINE_MAX:
                entity["body"] = body
            else:  # a name of its own: two attempts may both keep an answer; one row wins
                blob = f"idempotency/{claim.user_id}/{claim.row_key}-{secrets.token_hex(4)}.txt"
                self._blobs.upload_blob(blob, body.encode("utf-8"), overwrite=True)
                entity["body_blob"] = blob
            if merge_if_match(self._table, entity, claim.etag) is None:
                # not owned: the request that holds the key kept its answer first (same job)
                log = logger.warning if claim.owned else logger.info
                log("idempotency key of %s changed before this answer was kept", claim.user_id)
                if blob is not None:
                    self._blobs.delete_blob(blob)
        except Exception as exc:
            logger.warning("idempotency answer not kept: %s", type(exc).__name__)

    def abandon(self, claim: Claim) -> None:
        """Unlock the key so the request may be retried with it at once. The row stays
        `pending` (not deleted) so that the retry's job id is this one's: a job made before
        the failure is found, not made twice. Never raises: when storage fails, this process
        remembers the claim and `begin` takes its row over (the module's outage bound)."""
        unlock = {
            "PartitionKey": claim.user_id,
            "RowKey": claim.row_key,
            "locked_until": clock.now_iso(),
        }
        try:
            merge_if_match(self._table, unlock, claim.etag)  # None: taken over already
        except Exception as exc:
            logger.warning("idempotency key not unlocked: %s", type(exc).__name__)
            with self._unreleased_lock:
                self._unreleased[(claim.user_id, claim.row_key)] = claim.etag
                while len(self._unreleased) > _MAX_UNRELEASED:
                    self._unreleased.popitem(last=False)

    def _forgets(self, user_id: str, row_key: str, etag: str) -> bool:
        """True when this process abandoned the row at `etag` but could not unlock it (so it
        is unlocked now). A remembered claim whose row changed since is dropped."""
        with self._unreleased_lock:
            remembered = self._unreleased.pop((user_id, row_key), None)
        return remembered == etag

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


def in_use() -> Conflict:
    """409 IDEMPOTENCY_KEY_IN_USE: another request holds the key and no job of it exists yet."""
    return Conflict(
        f"A request with this {HEADER} is still being handled; retry shortly",
        error_code="IDEMPOTENCY_KEY_IN_USE",
        headers={"Retry-After": "1"},
    )


def _job_id(user_id: str, row_key: str, created_at: str) -> str:
    """The id of the job made under one use of a key (a UUID: a valid job id)."""
    return str(uuid.uuid5(_JOB_NAMESPACE, f"{user_id}/{row_key}/{created_at}"))


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    digest = hashlib.sha256(f"{method.upper()} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()
