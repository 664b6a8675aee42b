"""Where the ledger lives: table `ledger`, one partition (one hash chain) per user.

A charge inserts its entry with RowKey = the job id, unsealed (`seq` 0, no hashes): one round
trip, conditional, so a job is charged at most once (a second insert is a 409) whatever the
redeliveries and races, and charges of one user never contend for a shared row.

Sealing chains the unsealed entries of a partition in batches: in order of their charge time
(then job id) each gets the next `seq`, the hash of the entry before (`prev_hash`) and its own
hash, and the partition's head row (`~head`: the last `seq` and its hash) moves, in one
entity-group transaction conditional on the head's ETag and on each entry's, so the chain never
forks and the head and the entries never disagree. The recovery timer seals every minute;
`chain()` (and so every evidence bundle and verification) seals the partition first.

`insert_later` makes the insert after the answer, on background threads, for a charge that its
job row already records as owed (a run in the request): the answer does not wait for it, and if
this process dies first, the recovery timer charges the owed row. Every read here first waits
(at most `LATER_WAIT_SECONDS`) for the inserts this process still has in flight, so what this
instance charged, it shows; another instance sees it a few milliseconds later. An entry that
lands after a seal is not in the chain until the next seal: evidence and `chain()` hold sealed
entries only, so a period's evidence is final once the recovery timer has charged and sealed
what was left (about two minutes after it ended).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

from shared.ledger.models import GENESIS, KIND, LedgerEntry
from shared.storage import (
    LOST,
    Lost,
    Storage,
    calls,
    get_or_none,
    if_match,
    insert_new,
    transact,
    until_written,
)
from shared.storage.clients import LEDGER_TABLE
from shared.storage.query import literal, page

logger = logging.getLogger(__name__)

HEAD = "~head"  # sorts after every job id
_ATTEMPTS = 100
_BATCH = 99  # entries per transaction, with the head: 100 operations
LATER_WAIT_SECONDS = 5.0  # a read waits at most this long for the inserts still in flight
LATER_THREADS = 8  # inserts after the answer run on this many threads (each waits on storage)
# Past this many inserts in flight, the next is made before the answer: the backlog a read may
# have to wait for stays short however fast answers come (backpressure).
LATER_MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


class LedgerRepository:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._later = ThreadPoolExecutor(max_workers=LATER_THREADS, thread_name_prefix="ledger")
        self._lock = threading.Lock()
        self._in_flight: set[Future[None]] = set()

    def insert(self, entry: LedgerEntry) -> LedgerEntry | None:
        """Record `entry` unsealed; the stored entry, or None when the job was charged
        already (by an earlier delivery or a racing worker)."""
        unsealed = replace(entry, seq=0, prev_hash="", hash="")
        if insert_new(self._table, unsealed.to_row()) is None:
            return None
        return unsealed

    def insert_later(self, entry: LedgerEntry, then: Callable[[LedgerEntry | None], None]) -> None:
        """`insert(entry)` on a background thread, then `then(stored)`; a failure is logged
        and left to the owed row's recovery (module docstring). Past `LATER_MAX_IN_FLIGHT`
        inserts in flight it is made here, in the caller's request."""

        def insert() -> None:
            try:
                then(self.insert(entry))
            except Exception as exc:
                logger.warning(
                    "job %s: charge left to the recovery timer: %s",
                    entry.job_id,
                    type(exc).__name__,
                )

        def in_background() -> None:
            with calls.detached():
                insert()

        with self._lock:
            backlog = len(self._in_flight)
        if backlog >= LATER_MAX_IN_FLIGHT:
            insert()
            return
        future = self._later.submit(in_background)
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(self._landed)

    def _landed(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def _caught_up(self) -> None:
        """Wait for this process's inserts still in flight (bounded), so a read sees them."""
        with self._lock:
            pending = list(self._in_flight)
        if pending:
            wait(pending, timeout=LATER_WAIT_SECONDS)

    def seal(self, user_id: str) -> int:
        """Chain `user_id`'s unsealed entries onto its head; returns how many were sealed."""
        self._caught_up()
        table = self._table
        sealed = 0

        def attempt(n: int) -> int | Lost:
            """Seal batch after batch; how many were sealed in all once none is left."""
            nonlocal sealed
            while True:
                query = f"PartitionKey eq {literal(user_id)} and kind eq '{KIND}' and seq eq 0"
                rows = sorted(
                    table.query_entities(query), key=lambda r: (str(r["time"]), str(r["RowKey"]))
                )
                if not rows:
                    return sealed
                head_row = get_or_none(table, user_id, HEAD)
                seq = int(head_row["seq"]) if head_row is not None else 0
                prev = str(head_row["hash"]) if head_row is not None else GENESIS
                operations: list[tuple[Any, ...]] = []
                for row in rows[:_BATCH]:
                    entry = LedgerEntry.from_row(row).sealed(seq + 1, prev)
                    seq, prev = entry.seq, entry.hash
                    changes: dict[str, Any] = {"seq": seq, "prev_hash": entry.prev_hash}
                    changes["hash"] = entry.hash
                    keys = {"PartitionKey": user_id, "RowKey": entry.job_id}
                    operations.append(("update", keys | changes, if_match(row.metadata["etag"])))
                head: dict[str, Any] = {"PartitionKey": user_id, "RowKey": HEAD, "kind": "head"}
                head |= {"seq": seq, "hash": prev}
                if head_row is None:
                    operations.append(("create", head))
                else:
                    operations.append(("update", head, if_match(head_row.metadata["etag"])))
                if not transact(table, operations):
                    return LOST  # another sealer moved the head or an entry: read again
                sealed += len(operations) - 1

        return until_written(
            attempt,
            busy=lambda: RuntimeError(f"ledger of {user_id} too contended to seal"),
            tries=_ATTEMPTS,
        )

    def seal_pending(self, **filters: str) -> int:
        """Seal every partition holding unsealed entries that match `filters` (as `entries`);
        returns how many entries were sealed."""
        self._caught_up()
        users = {
            str(row["PartitionKey"])
            for row in self._table.query_entities(
                _query(filters) + " and seq eq 0", select=["PartitionKey"]
            )
        }
        return sum(self.seal(user) for user in sorted(users))

    def get(self, user_id: str, job_id: str) -> LedgerEntry | None:
        self._caught_up()
        row = get_or_none(self._table, user_id, job_id)
        return LedgerEntry.from_row(row) if row is not None and row.get("kind") == KIND else None

    def head(self, user_id: str) -> Head | None:
        self._caught_up()
        row = get_or_none(self._table, user_id, HEAD)
        return Head(int(row["seq"]), str(row["hash"])) if row is not None else None

    def chain(self, user_id: str) -> list[LedgerEntry]:
        """Every entry of `user_id`'s partition, in chain order, sealed first."""
        self.seal(user_id)
        query = f"PartitionKey eq {literal(user_id)} and kind eq '{KIND}'"
        rows = self._table.query_entities(query)
        # an entry inserted since the seal (seq 0, no hash) is not in the chain yet
        entries = [e for e in map(LedgerEntry.from_row, rows) if (e.seq, e.hash) != (0, "")]
        return sorted(entries, key=lambda e: e.seq)

    def entries(self, **filters: str) -> Iterator[LedgerEntry]:
        """Every entry matching `filters` (every partition's): `user_id`, `tenant`, `project`,
        `backend`, `currency` (equal), `since` (time >=) and `until` (time <)."""
        self._caught_up()
        for row in self._table.query_entities(_query(filters)):
            yield LedgerEntry.from_row(row)

    def page(
        self, page_size: int, cursor: str | None, **filters: str
    ) -> tuple[list[LedgerEntry], str | None]:
        """One page of `entries(**filters)` in storage order (user, then job id)."""
        self._caught_up()
        rows, following = page(self._table, _query(filters), page_size, cursor)
        return [LedgerEntry.from_row(r) for r in rows], following

    @property
    def _table(self) -> Any:
        return self._storage.table(LEDGER_TABLE)


def _query(filters: dict[str, str]) -> str:
    parts = [f"kind eq '{KIND}'"]
    names = {"user_id": "PartitionKey"}
    for name, value in filters.items():
        if name == "backend":  # any name of it: entries hold the id, older ones the supplier's
            from shared.suppliers.backends import stored_names

            either = " or ".join(f"backend eq {literal(n)}" for n in stored_names(value))
            parts.append(f"({either})")
        elif name == "since":
            parts.append(f"time ge {literal(value)}")
        elif name == "until":
            parts.append(f"time lt {literal(value)}")
        else:
            parts.append(f"{names.get(name, name)} eq {literal(value)}")
    return " and ".join(parts)
