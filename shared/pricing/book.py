"""The price book, `data/pricebook.json`: every catalog target's public price, in one file.

The book has a `version` (a date; bump it with any change), a `description` and `entries`. An
entry prices some targets of one supplier: those it names in `targets`, or every target of the
providers it names in `providers` (a target's own entry wins over its provider's). Its other
fields are `CostModel`'s (rates, `unit`, `formula` in words, `source`, `as_of`), plus an
optional `notes` for people. The catalog (`shared.suppliers.catalog`) carries no prices:
`cost_model(target)` finds a target's here. Reading the book finds every catalog target's
entry, so a target no entry prices, two entries pricing the same target, or an entry that
prices nothing is an error when the book loads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.suppliers.base import Target
from shared.suppliers.catalog import SupplierInfo, catalog

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


@dataclass(frozen=True)
class CostModel:
    """How the supplier prices a task: one entry of the price book, the only place prices live.

    A task costs `per_task` (`per_task_error_mitigation` instead, when error mitigation is on
    and the entry has one) + shots x (`per_shot` + `per_1q_gate_shot` x N1q + `per_2q_gate_shot`
    x N2q + `per_measure_shot` x Nm) + `per_minute` x billed seconds / 60, where the billed
    seconds are the run's, rounded up to a multiple of `increment_seconds` (when set) and at
    least `minimum_seconds`. `formula == "free"` marks a free target. `shared.pricing.formulas`
    computes a task's price from this.
    """

    unit: str  # the currency: "USD", or "HQC" (Quantinuum credits)
    per_task: float = 0.0
    per_task_error_mitigation: float = 0.0  # replaces per_task with error mitigation; 0: none
    per_shot: float = 0.0
    per_1q_gate_shot: float = 0.0
    per_2q_gate_shot: float = 0.0
    per_measure_shot: float = 0.0
    per_minute: float = 0.0  # of QPU or simulator time
    minimum_seconds: float = 0.0  # time billed at least
    increment_seconds: float = 0.0  # time billed in multiples of this; 0: as measured
    formula: str = ""  # in words, e.g. "0.30 USD per task + 0.08 USD per shot"; or "free"
    source: str = ""  # the public page the price was read from
    as_of: str = ""  # the date it was read
    version: str = ""  # the price book's version

    @property
    def free(self) -> bool:
        return self.formula == "free"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    # each catalog target's price, by (supplier, provider, target name)
    prices: Mapping[tuple[str, str, str], CostModel] = field(default_factory=dict, compare=False)

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


def parse_pricebook(data: dict[str, Any]) -> PriceBook:
    """A `PriceBook` from the file's JSON, with the price of every catalog target. `ValueError`
    naming the entry for anything amiss, when a catalog target has no price in the book (or
    two), or when an entry prices no catalog target (a typo, or a target since removed)."""
    version = str(data.get("version") or "")
    if not version:
        raise ValueError("The price book has no version")
    entries = tuple(_entry(raw, version) for raw in data.get("entries", ()))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError("The price book repeats an entry id")
    book = PriceBook(version=version, description=str(data.get("description", "")), entries=entries)
    return replace(book, prices=_prices(book, catalog()))


def _prices(
    book: PriceBook, suppliers: Mapping[str, SupplierInfo]
) -> dict[tuple[str, str, str], CostModel]:
    """Each target's price; every book entry names catalog targets and providers only, and
    prices some target."""
    prices: dict[tuple[str, str, str], CostModel] = {}
    used: set[str] = set()
    for info in suppliers.values():
        for t in info.targets():
            entry = book.entry_for(t.supplier, t.provider, t.name)
            prices[(t.supplier, t.provider, t.name)] = entry.cost
            used.add(entry.id)
    for entry in book.entries:
        found = suppliers.get(entry.supplier)
        targets = {t.name.lower() for t in found.targets()} if found else set()
        providers = {p.id.lower() for p in found.providers} if found else set()
        stray = sorted((set(entry.targets) - targets) | (set(entry.providers) - providers))
        if stray:
            raise ValueError(
                f"Price book entry {entry.id}: {entry.supplier} has no {', '.join(stray)}"
            )
        if entry.id not in used:
            raise ValueError(f"Price book entry {entry.id} prices no catalog target")
    return prices


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
    """The price book, every catalog target priced (read once per process)."""
    return parse_pricebook(json.loads(PRICEBOOK_PATH.read_text(encoding="utf-8")))


def cost_model(target: Target) -> CostModel | None:
    """`target`'s price book entry (None for a target the catalog does not list)."""
    return pricebook().prices.get((target.supplier, target.provider, target.name))
