"""Checking one user's hash chain of ledger entries.

A partition of table `ledger` holds one chain: entry `seq` n (from 1) carries the hash of entry
n-1 as `prev_hash` (`GENESIS` for n = 1) and its own `hash` over every other field. The
partition's chain-head row records the last `seq` and `hash`, written in the same transaction as
the entry, so an entry removed from the end is detectable too.

What a chain can and cannot show: a changed, removed, duplicated or reordered entry breaks it,
but whoever can write the table can also rewrite every entry after a change and the head. A
signed evidence bundle (`shared.ledger.evidence`) pins the chain as it was when it was exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.ledger.models import GENESIS, LedgerEntry, entry_hash


@dataclass(frozen=True)
class Break:
    """One problem found in a chain: the entry (`seq`) it was found at, in words."""

    user_id: str
    seq: int
    problem: str


def verify_chain(
    entries: Sequence[LedgerEntry], *, head: tuple[int, str] | None = None
) -> list[Break]:
    """The breaks in the chain of one partition; empty when it is intact.

    `entries` may come in any order (they are sorted by `seq`). Each entry's hash must match
    its fields, the seqs must run 1, 2, 3, ... without gaps or repeats, and each `prev_hash`
    must be the hash of the entry before. `head` is `(last seq, last hash)` from the
    partition's chain-head row: when given, the last entry must be that one (so an entry
    removed from the end, or one added without moving the head, is reported). Never raises
    for the contents of the entries: a row stored with a `seq` that is not a number is
    reported at seq 0.
    """
    ordered = sorted((e for e in entries if _numbered(e)), key=lambda e: e.seq)
    user_id = ordered[0].user_id if ordered else entries[0].user_id if entries else ""
    breaks = [
        Break(user_id, 0, f"entry {e.job_id!r} has no numeric seq")
        for e in entries
        if not _numbered(e)
    ]

    def report(seq: int, problem: str) -> None:
        breaks.append(Break(user_id, seq, problem))

    previous: LedgerEntry | None = None
    for entry in ordered:
        if entry.user_id != user_id:
            report(entry.seq, f"entry belongs to user {entry.user_id!r}, not {user_id!r}")
        if not _sealed(entry):
            report(entry.seq, "hash does not match its fields")
        expected = previous.seq + 1 if previous else 1
        if entry.seq < expected:
            # Below 1, or a seq already seen: nothing to link it to.
            report(entry.seq, _misplaced(entry.seq))
            continue
        if entry.seq > expected:
            report(expected, missing(expected, entry.seq - 1))
        elif entry.seq == 1 and entry.prev_hash != GENESIS:
            report(1, "prev_hash of the first entry is not the genesis hash")
        elif previous and entry.prev_hash != previous.hash:
            report(entry.seq, f"prev_hash does not match the hash of entry {previous.seq}")
        previous = entry

    if head is not None:
        breaks.extend(_head_breaks(user_id, previous, head))
    return breaks


def _numbered(entry: LedgerEntry) -> bool:
    return isinstance(entry.seq, int) and not isinstance(entry.seq, bool)


def _sealed(entry: LedgerEntry) -> bool:
    try:
        return entry_hash(entry) == entry.hash
    except (TypeError, ValueError):  # a stored value JSON cannot hold: not what was sealed
        return False


def _head_breaks(user_id: str, last: LedgerEntry | None, head: tuple[int, str]) -> list[Break]:
    head_seq, head_hash = head
    last_seq = last.seq if last else 0
    if last_seq < head_seq:
        problem = f"{missing(last_seq + 1, head_seq)} (the chain head is at seq {head_seq})"
        return [Break(user_id, last_seq + 1, problem)]
    if last_seq > head_seq:
        return [Break(user_id, head_seq + 1, f"entries after the chain head (seq {head_seq})")]
    if last is not None and last.hash != head_hash:
        return [Break(user_id, last_seq, "hash does not match the chain head")]
    return []


def missing(first: int, last: int) -> str:
    """How a gap of entries `first`..`last` in a chain is reported."""
    return (
        f"entry {first} is missing" if first == last else f"entries {first} to {last} are missing"
    )


def _misplaced(seq: int) -> str:
    return f"seq {seq} is not a chain position" if seq < 1 else f"entry {seq} appears twice"
