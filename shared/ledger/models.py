"""A ledger entry: what one job was charged, chained to the entry before it.

Entries live in table `ledger`, PartitionKey = the job owner's user id, RowKey = the job id, so
a job is charged at most once (a second insert is a 409). Each partition is one hash chain:
entry `seq` n holds the hash of entry n-1 (`prev_hash`; `GENESIS` for the first) and its own
hash over every other field, so a changed, removed or reordered entry is detectable.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal
from typing import Any

from shared.signing import canonical

GENESIS = "0" * 64
KIND = "charge"  # the `kind` of entry rows (the table holds counters too)


def amount(value: Decimal) -> str:
    """Decimal text without exponent, at least 2 decimals ("0.00", "80.30", "1.195")."""
    text = format(value.normalize(), "f")
    if len(text.partition(".")[2]) < 2:
        text = format(value, ".2f")
    return text


@dataclass(frozen=True)
class LedgerEntry:
    user_id: str
    job_id: str
    seq: int  # position in the user's chain, from 1
    time: str  # when the job was charged (ISO 8601, UTC, `Z`)
    tenant: str  # "" when the user has none
    project: str  # the job's `tags["project"]`, "" when none
    supplier: str  # "local" for the gateway's own simulator
    backend: str
    mode: str  # "local" | "emulated" | "cloud"
    shots: int
    cost: str  # decimal text: what was charged (0 unless a supplier ran it)
    currency: str  # ISO 4217 code, or the supplier's unit (e.g. "HQC")
    list_cost: str  # what the backend's device would have cost by the price book
    price_source: str  # e.g. "pricebook 2026-11-21", "local simulator"
    prev_hash: str = GENESIS
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Every field but `hash`: what the hash covers."""
        data = asdict(self)
        del data["hash"]
        return data

    def sealed(self, seq: int, prev_hash: str) -> LedgerEntry:
        """This entry at chain position `seq` after `prev_hash`, with its hash."""
        placed = replace(self, seq=seq, prev_hash=prev_hash, hash="")
        return replace(placed, hash=entry_hash(placed))

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["PartitionKey"] = row.pop("user_id")
        row["RowKey"] = row.pop("job_id")
        row["kind"] = KIND
        return row

    @classmethod
    def from_row(cls, row: Any) -> LedgerEntry:
        names = {f.name for f in fields(cls)} - {"user_id", "job_id"}
        values = {name: row[name] for name in names if name in row}
        return cls(user_id=str(row["PartitionKey"]), job_id=str(row["RowKey"]), **values)


def shown_backend(entry: LedgerEntry) -> str:
    """The entry's backend as every answer names it: the network's id (`braket_iqm_garnet`),
    also for entries written with the supplier's own name (`garnet`) before ids were stored.
    The entry itself, and so its hash, keeps what was written."""
    from shared.suppliers.backends import public_id  # the one mapping of backend names

    return public_id(entry.supplier, entry.backend)


def entry_hash(entry: LedgerEntry) -> str:
    """SHA-256 (hex) of the canonical JSON of `entry.body()`."""
    return hashlib.sha256(canonical(entry.body())).hexdigest()
