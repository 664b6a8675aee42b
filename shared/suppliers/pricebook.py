"""The price book, `data/pricebook.json`: every catalog target's public price, in one file.

The book has a `version` (a date; bump it with any change), a `description` and `entries`. An
entry prices some targets of one supplier: those it names in `targets`, or every target of the
providers it names in `providers` (a target's own entry wins over its provider's). Its other
fields are `CostModel`'s (rates, `unit`, `formula` in words, `source`, `as_of`), plus an
optional `notes` for people. The catalog (`shared.suppliers.catalog`) attaches each target's
`CostModel` from here; a target no entry prices, two entries pricing the same target, or an
entry that prices nothing is an error when the catalog loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.suppliers.base import CostModel

PRICEBOOK_PATH = Path(__file__).parent / "data" / "pricebook.json"

CURRENCIES = ("USD", "HQC")
_RATES = (
    "per_task",
    "per_task_error_mitigation",
    "per_shot",
    "per_1q_gate_shot",
    "per_2q_gate_shot",
    "per_measure_shot",
    "per_minute",
)
_COST_FIELDS = frozenset(f.name for f in fields(CostModel)) - {"version"}
_ENTRY_KEYS = frozenset({"id", "supplier", "targets", "providers", "notes"})


@dataclass(frozen=True)
class PriceEntry:
    id: str
    supplier: str
    targets: tuple[str, ...]  # target names, lower case
    providers: tuple[str, ...]  # provider ids, lower case
    cost: CostModel


@dataclass(frozen=True)
class PriceBook:
    version: str
    description: str
    entries: tuple[PriceEntry, ...]

    def entry_for(self, supplier: str, provider: str, target: str) -> PriceEntry:
        """The entry that prices `target` (of `provider`, of `supplier`): the one naming the
        target, else the one naming its provider. `ValueError` when none does."""
        name = target.lower()
        own = [e for e in self.entries if e.supplier == supplier and name in e.targets]
        found = own or [
            e for e in self.entries if e.supplier == supplier and provider.lower() in e.providers
        ]
        if len(found) != 1:
            problem = "no price" if not found else f"{len(found)} prices"
            raise ValueError(
                f"{supplier}/{target}: {problem} in the price book {self.version} "
                f"({PRICEBOOK_PATH.name}); every catalog target needs exactly one"
            )
        return found[0]

    def cost(self, supplier: str, provider: str, target: str) -> CostModel:
        return self.entry_for(supplier, provider, target).cost


def parse_pricebook(data: dict[str, Any]) -> PriceBook:
    """A `PriceBook` from the file's JSON; `ValueError` naming the entry for anything amiss."""
    version = str(data.get("version") or "")
    if not version:
        raise ValueError("The price book has no version")
    entries = tuple(_entry(raw, version) for raw in data.get("entries", ()))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError("The price book repeats an entry id")
    return PriceBook(version=version, description=str(data.get("description", "")), entries=entries)


def _entry(raw: dict[str, Any], version: str) -> PriceEntry:
    entry_id = str(raw.get("id") or "")
    unknown = set(raw) - _ENTRY_KEYS - _COST_FIELDS
    if not entry_id or unknown:
        raise ValueError(f"Price book entry {entry_id!r}: no id or unknown keys {sorted(unknown)}")
    targets = tuple(str(t).lower() for t in raw.get("targets", ()))
    providers = tuple(str(p).lower() for p in raw.get("providers", ()))
    if not raw.get("supplier") or bool(targets) == bool(providers):
        raise ValueError(f"Price book entry {entry_id}: name a supplier and targets or providers")
    cost = CostModel(**{k: v for k, v in raw.items() if k in _COST_FIELDS})
    cost = replace(cost, version=version)
    _check(entry_id, cost)
    return PriceEntry(
        id=entry_id,
        supplier=str(raw["supplier"]),
        targets=targets,
        providers=providers,
        cost=cost,
    )


def _check(entry_id: str, cost: CostModel) -> None:
    rates = [getattr(cost, name) for name in _RATES]
    problems = []
    if cost.unit not in CURRENCIES:
        problems.append(f"unit {cost.unit!r} is not one of {', '.join(CURRENCIES)}")
    if not cost.formula or not cost.source or not cost.as_of:
        problems.append("formula, source and as_of are required")
    if any(
        not isinstance(v, int | float) or isinstance(v, bool) or v < 0
        for v in (*rates, cost.minimum_seconds, cost.increment_seconds)
    ):
        problems.append("rates and seconds are numbers, never negative")
    elif cost.free == any(rates):
        problems.append('a free entry has no rates; a priced one has some (formula "free")')
    if problems:
        raise ValueError(f"Price book entry {entry_id}: " + "; ".join(problems))


@lru_cache(maxsize=1)
def pricebook() -> PriceBook:
    """The price book (read once per process)."""
    return parse_pricebook(json.loads(PRICEBOOK_PATH.read_text(encoding="utf-8")))
