"""Where the ledger lives: table `ledger`, one partition (one hash chain) per user.

Beside the entries, each partition has a head row (`~head`: the last `seq` and its hash, and
the partition's running totals). A charge inserts the entry and moves the head in one
entity-group transaction, conditional on the head's ETag: a job is charged once (its entry's
RowKey is the job id, so a second insert fails the whole transaction), the chain never forks
(two racing charges cannot both extend the same head), and the head and the entries never
disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from shared.ledger.models import GENESIS, KIND, LedgerEntry
from shared.storage import Storage, back_off, get_or_none, if_match, transact
from shared.storage.clients import LEDGER_TABLE
from shared.storage.query import literal, page

logger = logging.getLogger(__name__)

HEAD = "~head"  # sorts after every job id
_ATTEMPTS = 100


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


class LedgerRepository:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def append(
        self, entry: LedgerEntry, *, now: Callable[[], str] | None = None
    ) -> LedgerEntry | None:
        """Chain `entry` onto its user's partition; the stored entry, or None when the job was
        charged already. `now()` (default: the entry's own time) stamps each attempt, so the
        chain's times follow its order."""
        table = self._table
        for attempt in range(_ATTEMPTS):
            head_row = get_or_none(table, entry.user_id, HEAD)
            seq = int(head_row["seq"]) if head_row is not None else 0
            prev = str(head_row["hash"]) if head_row is not None else GENESIS
            stamped = entry if now is None else replace(entry, time=now())
            sealed = stamped.sealed(seq + 1, prev)
            head = {
                "PartitionKey": entry.user_id,
                "RowKey": HEAD,
                "kind": "head",
                "seq": sealed.seq,
                "hash": sealed.hash,
            }
            operations: list[tuple[Any, ...]] = [("create", sealed.to_row())]
            if head_row is None:
                operations.append(("create", head))
            else:
                operations.append(("update", head, if_match(head_row.metadata["etag"])))
            if transact(table, operations):
                return sealed
            if get_or_none(table, entry.user_id, entry.job_id) is not None:
                return None  # charged by an earlier delivery or a racing worker
            back_off(attempt)
        raise RuntimeError(f"ledger of {entry.user_id} too contended to charge {entry.job_id}")

    def get(self, user_id: str, job_id: str) -> LedgerEntry | None:
        row = get_or_none(self._table, user_id, job_id)
        return LedgerEntry.from_row(row) if row is not None and row.get("kind") == KIND else None

    def head(self, user_id: str) -> Head | None:
        row = get_or_none(self._table, user_id, HEAD)
        return Head(int(row["seq"]), str(row["hash"])) if row is not None else None

    def chain(self, user_id: str) -> list[LedgerEntry]:
        """Every entry of `user_id`'s partition, in chain order."""
        query = f"PartitionKey eq {literal(user_id)} and kind eq '{KIND}'"
        entries = [LedgerEntry.from_row(r) for r in self._table.query_entities(query)]
        return sorted(entries, key=lambda e: e.seq)

    def entries(self, **filters: str) -> Iterator[LedgerEntry]:
        """Every entry matching `filters` (every partition's): `user_id`, `tenant`, `project`,
        `backend`, `currency` (equal), `since` (time >=) and `until` (time <)."""
        for row in self._table.query_entities(_query(filters)):
            yield LedgerEntry.from_row(row)

    def page(
        self, page_size: int, cursor: str | None, **filters: str
    ) -> tuple[list[LedgerEntry], str | None]:
        """One page of `entries(**filters)` in storage order (user, then job id)."""
        rows, following = page(self._table, _query(filters), page_size, cursor)
        return [LedgerEntry.from_row(r) for r in rows], following

    @property
    def _table(self) -> Any:
        return self._storage.table(LEDGER_TABLE)


def _query(filters: dict[str, str]) -> str:
    parts = [f"kind eq '{KIND}'"]
    names = {"user_id": "PartitionKey"}
    for name, value in filters.items():
        if name == "since":
            parts.append(f"time ge {literal(value)}")
        elif name == "until":
            parts.append(f"time lt {literal(value)}")
        else:
            parts.append(f"{names.get(name, name)} eq {literal(value)}")
    return " and ".join(parts)
