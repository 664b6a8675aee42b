"""Audit evidence bundles: ledger entries exported as one signed JSON document that checks itself.

A bundle covers a selection of entries (a tenant, a time range), from any number of chains. For
each chain (one user's partition) it holds every entry from the first selected `seq` to the last:
the selected ones in full under `entries`, the others only as `links` (`seq`, `prev_hash`,
`hash`), so the chain can be followed without revealing entries outside the selection. It also
records, as `breaks`, what `verify_chain` found in the whole stored chain when the bundle was
made: a stored row altered and then exported is still signed, so the bundle must say so.

```
{"format": "qcos-ledger-evidence/1", "id", "created_at", "period": {"from", "to"},
 "tenant": str | null,
 "chains": [{"user_id", "first_seq", "last_seq", "entries": [...], "links": [...],
             "breaks": [{"seq", "problem"}]}],          # by user_id; entries and links by seq
 "totals": {"entries", "shots", "cost": {currency: "decimal"}, "list_cost": {...}},
 "signing": {"algorithm": "Ed25519", "public_key": base64, "ephemeral": bool},
 "signature": base64}                                   # over everything else (canonical JSON)
```

Amounts are decimal text, summed exactly, written without exponents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from decimal import Context, Decimal, DecimalException, Inexact, InvalidOperation, Overflow
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.ledger.chain import missing, verify_chain
from shared.ledger.models import GENESIS, LedgerEntry, entry_hash
from shared.signing import ALGORITHM, public_b64, sign, verify

FORMAT = "qcos-ledger-evidence/1"

# Sums must be exact: a rounded total would not match the entries it claims to add up.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, Overflow])
# Digits an amount may have either side of the point: far beyond money, and short enough to
# print ("1e999999999" is decimal text too, but written out it would not fit in memory).
_DIGITS = 30
_FIELDS = fields(LedgerEntry)


def build_bundle(
    selected: Sequence[LedgerEntry],
    chains: Mapping[str, Sequence[LedgerEntry]],
    *,
    bundle_id: str,
    created_at: str,
    period_from: str,
    period_to: str,
    tenant: str | None,
    key: Ed25519PrivateKey,
    key_ephemeral: bool,
    heads: Mapping[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """The signed bundle of `selected` (JSON-serialisable).

    `chains[user_id]` is that partition's whole chain as read from storage; `heads[user_id]`,
    when given, its chain-head row `(last seq, last hash)`, so that an entry removed from the
    end is recorded as a break too. Raises `ValueError` when a selected entry's user has no
    chain in `chains`, when `tenant` is set and an entry belongs to another tenant, or when a
    selected entry has a field of the wrong type or an amount that is not decimal text. A
    stored entry outside the selection never stops the bundle: what is wrong with it is
    recorded in `breaks`.
    """
    chosen: dict[str, dict[int, LedgerEntry]] = {}
    for entry in selected:
        if _entry(asdict(entry)) is None:
            raise ValueError(f"entry {entry.job_id!r} of {entry.user_id!r} is malformed")
        if tenant is not None and entry.tenant != tenant:
            raise ValueError(f"entry {entry.job_id} belongs to tenant {entry.tenant!r}")
        chosen.setdefault(entry.user_id, {})[entry.seq] = entry
    sections = []
    for user_id in sorted(chosen):
        if user_id not in chains:
            raise ValueError(f"no stored chain for user {user_id!r}")
        head = heads.get(user_id) if heads else None
        sections.append(_section(user_id, chosen[user_id], chains[user_id], head))
    document = {
        "format": FORMAT,
        "id": bundle_id,
        "created_at": created_at,
        "period": {"from": period_from, "to": period_to},
        "tenant": tenant,
        "chains": sections,
        "totals": _totals(e for entries in chosen.values() for e in entries.values()),
        "signing": {
            "algorithm": ALGORITHM,
            "public_key": public_b64(key),
            "ephemeral": key_ephemeral,
        },
    }
    return {**document, "signature": sign(key, document)}


def _section(
    user_id: str,
    chosen: Mapping[int, LedgerEntry],
    stored: Sequence[LedgerEntry],
    head: tuple[int, str] | None,
) -> dict[str, Any]:
    first, last = min(chosen), max(chosen)
    # A stored row with values of the wrong type cannot be a link; verify_chain reports it.
    between = sorted(
        (e for e in stored if _linkable(e) and first < e.seq < last and e.seq not in chosen),
        key=lambda e: e.seq,
    )
    return {
        "user_id": user_id,
        "first_seq": first,
        "last_seq": last,
        "entries": [asdict(chosen[seq]) for seq in sorted(chosen)],
        "links": [{"seq": e.seq, "prev_hash": e.prev_hash, "hash": e.hash} for e in between],
        "breaks": [{"seq": b.seq, "problem": b.problem} for b in verify_chain(stored, head=head)],
    }


def _totals(entries: Iterable[LedgerEntry]) -> dict[str, Any]:
    count = shots = 0
    cost: dict[str, Decimal] = {}
    list_cost: dict[str, Decimal] = {}
    for entry in entries:
        count += 1
        shots += entry.shots
        for sums, text in ((cost, entry.cost), (list_cost, entry.list_cost)):
            amount = _decimal(text, entry)
            try:
                sums[entry.currency] = _EXACT.add(sums.get(entry.currency, Decimal(0)), amount)
            except DecimalException as exc:
                raise ValueError(f"the {entry.currency} total cannot be summed exactly") from exc
    return {
        "entries": count,
        "shots": shots,
        "cost": {currency: _text(total) for currency, total in sorted(cost.items())},
        "list_cost": {currency: _text(total) for currency, total in sorted(list_cost.items())},
    }


def _decimal(text: object, entry: LedgerEntry) -> Decimal:
    try:
        amount = Decimal(text) if isinstance(text, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise ValueError(
            f"entry {entry.seq} of {entry.user_id!r}: {_show(text)} is not decimal text"
        )
    if not -_DIGITS < amount.adjusted() < _DIGITS:
        raise ValueError(f"entry {entry.seq} of {entry.user_id!r}: {_show(text)} is out of range")
    return amount


def _text(amount: Decimal) -> str:
    # "f" never writes an exponent; copy_abs turns -0 into 0.
    return format(amount.copy_abs() if amount.is_zero() else amount, "f")


def verify_bundle(bundle: Mapping[str, Any], *, public_key: str | None = None) -> list[str]:
    """The problems of `bundle`, in words; empty when it is valid.

    Checks the format; the signature, by `public_key` (base64) when given, else by the key the
    bundle names (which proves the bundle unchanged since that key's holder signed it, not who
    that was); each full entry's hash; that each chain runs from `first_seq` to `last_seq`
    without gaps and that every `prev_hash` links; that no break was recorded; that the totals
    are those of the entries. Never raises: a malformed bundle is reported as a problem.
    """
    try:
        return _problems(bundle, public_key)
    except Exception as exc:  # a bundle is untrusted input: whatever it holds is a problem
        return [f"the bundle cannot be checked ({type(exc).__name__})"]


def _problems(bundle: Any, public_key: str | None) -> list[str]:
    if not isinstance(bundle, Mapping):
        return ["the bundle is not a JSON object"]
    if bundle.get("format") != FORMAT:
        return [f"format is {_show(bundle.get('format'))}, not {FORMAT!r}"]
    problems = _signature_problems(bundle, public_key) + _header_problems(bundle)
    chains = bundle.get("chains")
    if not isinstance(chains, list):
        return [*problems, "chains is not a list"]
    tenant = bundle.get("tenant")
    entries: list[LedgerEntry] = []
    users: set[str] = set()
    for index, chain in enumerate(chains):
        if isinstance(chain, Mapping) and isinstance(chain.get("user_id"), str):
            if chain["user_id"] in users:
                problems.append(f"chain {_show(chain['user_id'])} appears twice")
            users.add(chain["user_id"])
        problems += _chain_problems(
            chain, index, tenant if isinstance(tenant, str) else None, entries
        )
    return problems + _totals_problems(bundle.get("totals"), entries)


def _signature_problems(bundle: Mapping[str, Any], public_key: str | None) -> list[str]:
    signing = bundle.get("signing")
    if not isinstance(signing, Mapping) or not isinstance(signing.get("public_key"), str):
        return ["signing is missing or names no public key"]
    problems = []
    if signing.get("algorithm") != ALGORITHM:
        problems.append(f"signing algorithm is {_show(signing.get('algorithm'))}, not {ALGORITHM}")
    if not isinstance(signing.get("ephemeral"), bool):
        problems.append("signing.ephemeral is neither true nor false")
    if public_key is not None and signing["public_key"] != public_key:
        problems.append("the bundle names another signing key than the one given")
    signature = bundle.get("signature")
    document = {name: value for name, value in bundle.items() if name != "signature"}
    whose = "the given public key" if public_key is not None else "the bundle's own public key"
    if not isinstance(signature, str):
        problems.append("the signature is missing")
    elif not verify(
        public_key if public_key is not None else signing["public_key"], document, signature
    ):
        problems.append(f"the signature does not verify with {whose}")
    return problems


def _header_problems(bundle: Mapping[str, Any]) -> list[str]:
    problems = [
        f"{name} is not text"
        for name in ("id", "created_at")
        if not isinstance(bundle.get(name), str)
    ]
    period = bundle.get("period")
    if not (
        isinstance(period, Mapping) and all(isinstance(period.get(e), str) for e in ("from", "to"))
    ):
        problems.append("period is not {from, to}")
    if not (bundle.get("tenant") is None or isinstance(bundle.get("tenant"), str)):
        problems.append("tenant is neither text nor null")
    return problems


def _chain_problems(
    chain: Any, index: int, tenant: str | None, found: list[LedgerEntry]
) -> list[str]:
    """Checks one chain section, adding its well-formed full entries to `found`."""
    if not isinstance(chain, Mapping) or not isinstance(chain.get("user_id"), str):
        return [f"chains[{index}] is not a chain with a user_id"]
    user_id = chain["user_id"]
    name = f"chain {_show(user_id)}"
    parts: dict[str, list[Any]] = {}
    for part in ("entries", "links", "breaks"):
        value = chain.get(part)
        if not isinstance(value, list):
            return [f"{name}: {part} is not a list"]
        parts[part] = value
    problems: list[str] = []
    slots: dict[int, tuple[str, str]] = {}  # seq -> (prev_hash, hash), from entries and links

    def place(seq: int, prev_hash: str, hash_: str) -> None:
        if seq in slots:
            problems.append(f"{name}: entry {seq} appears twice")
        slots[seq] = (prev_hash, hash_)

    for position, raw in enumerate(parts["entries"]):
        entry = _entry(raw)
        if entry is None:
            problems.append(f"{name}: entries[{position}] is malformed")
            continue
        if entry.user_id != user_id:
            problems.append(f"{name}: entry {entry.seq} belongs to user {_show(entry.user_id)}")
        if tenant is not None and entry.tenant != tenant:
            problems.append(f"{name}: entry {entry.seq} belongs to tenant {_show(entry.tenant)}")
        if entry_hash(entry) != entry.hash:
            problems.append(f"{name}: entry {entry.seq}: hash does not match its fields")
        place(entry.seq, entry.prev_hash, entry.hash)
        found.append(entry)
    for position, raw in enumerate(parts["links"]):
        if not _is_link(raw):
            problems.append(f"{name}: links[{position}] is malformed")
            continue
        place(raw["seq"], raw["prev_hash"], raw["hash"])
    problems += _link_problems(name, chain.get("first_seq"), chain.get("last_seq"), slots)
    return problems + [f"{name}: {_recorded(b)}" for b in parts["breaks"]]


def _recorded(recorded: Any) -> str:
    detail = (
        f"entry {_show(recorded.get('seq'))}: {_show(recorded.get('problem'))}"
        if isinstance(recorded, Mapping)
        else _show(recorded)
    )
    return f"the stored chain was broken when the bundle was made: {detail}"


def _link_problems(
    name: str, first: Any, last: Any, slots: Mapping[int, tuple[str, str]]
) -> list[str]:
    if not (_is_int(first) and _is_int(last) and 1 <= first <= last):
        return [f"{name}: first_seq and last_seq are not a range of chain positions"]
    problems = [
        f"{name}: entry {seq} is outside first_seq..last_seq"
        for seq in sorted(slots)
        if not first <= seq <= last
    ]
    expected = first
    for seq in sorted(s for s in slots if first <= s <= last):
        if seq > expected:
            problems.append(f"{name}: {missing(expected, seq - 1)}")
        elif seq == 1 and slots[seq][0] != GENESIS:
            problems.append(f"{name}: prev_hash of the first entry is not the genesis hash")
        elif seq > first and slots[seq][0] != slots[seq - 1][1]:
            problems.append(
                f"{name}: prev_hash of entry {seq} does not match the hash of entry {seq - 1}"
            )
        expected = seq + 1
    if expected <= last:
        problems.append(f"{name}: {missing(expected, last)}")
    return problems


def _totals_problems(stated: Any, entries: Sequence[LedgerEntry]) -> list[str]:
    try:
        actual = _totals(entries)
    except ValueError as exc:
        return [f"totals cannot be recomputed: {exc}"]
    if not isinstance(stated, Mapping):
        return ["totals is missing"]
    problems = []
    for part in ("entries", "shots"):
        if not (_is_int(stated.get(part)) and stated[part] == actual[part]):
            problems.append(
                f"totals.{part} is {_show(stated.get(part))}, the entries give {actual[part]}"
            )
    for part in ("cost", "list_cost"):
        if not _same_amounts(stated.get(part), actual[part]):
            problems.append(
                f"totals.{part} is {_show(stated.get(part))}, the entries give {actual[part]}"
            )
    return problems


def _same_amounts(stated: Any, actual: Mapping[str, str]) -> bool:
    if not isinstance(stated, Mapping) or set(stated) != set(actual):
        return False
    for currency, text in stated.items():
        try:
            if not isinstance(text, str) or Decimal(text) != Decimal(actual[currency]):
                return False
        except InvalidOperation:
            return False
    return True


def _entry(raw: Any) -> LedgerEntry | None:
    """`raw` as an entry when it has exactly the entry's fields, with their types."""
    if not isinstance(raw, Mapping) or set(raw) != {f.name for f in _FIELDS}:
        return None
    for f in _FIELDS:
        value = raw[f.name]
        # The model's annotations are strings (postponed evaluation): "str" or "int".
        if (f.type == "int" and not _is_int(value)) or (
            f.type == "str" and not isinstance(value, str)
        ):
            return None
    return LedgerEntry(**raw)


def _linkable(entry: LedgerEntry) -> bool:
    return _is_int(entry.seq) and isinstance(entry.prev_hash, str) and isinstance(entry.hash, str)


def _is_link(raw: Any) -> bool:
    return (
        isinstance(raw, Mapping)
        and _is_int(raw.get("seq"))
        and isinstance(raw.get("prev_hash"), str)
        and isinstance(raw.get("hash"), str)
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object) -> str:
    """A value from the bundle, quoted and cut short for a message."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond the interpreter's limit on digits
        return "a value too large to show"
    return text if len(text) <= 80 else text[:77] + "..."
