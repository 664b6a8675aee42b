"""Ledger entries as FOCUS 1.2 cost and usage rows: one row per charged job, as CSV.

FOCUS is the FinOps Open Cost and Usage Specification; version 1.2 was ratified on 2025-05-29.
The column names, allowed values and formats below are those of its column definitions
(FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, `specification/columns/*.md`). Columns that do not
apply to a job's charge (commitment discounts, capacity reservations, regions, unit prices) are
left out; the mandatory ones are all present. Our own columns carry the `x_` prefix FOCUS
requires of custom columns. An absent value is an empty cell (FOCUS's null).

How an entry maps:

- The billing account is the tenant, or the user when there is none (`BillingAccountType`
  "Tenant" or "User"); the sub account is the user.
- Each row prices one job (`PricingQuantity` 1 "Jobs"); `ConsumedQuantity` is its shots. The
  gateway is provider and invoice issuer; the supplier that ran the job is the publisher ("local",
  the gateway's own simulator, is the gateway's).
- The charge period is the second the job was charged: FOCUS date/times have whole seconds and
  the end is exclusive. The billing period is that calendar month (UTC).
- `ContractedCost` is the list cost, since no negotiated discount applies: an emulated run costs
  nothing, which shows as `EffectiveCost` 0 against the device's `ListCost`.
- Money: `BillingCurrency` must be a national (ISO 4217) currency. A job priced in a supplier's
  credits (`VIRTUAL_CURRENCIES`, e.g. Quantinuum's HQC) has no amount in a national currency:
  the gateway has no exchange rate for credits and inventing one, or a 0, would be false. Such a
  row has the amounts in `PricingCurrency` / `PricingCurrencyEffectiveCost` (FOCUS 1.2's columns
  for virtual currencies) and `x_PricingCurrencyListCost`, and leaves the billing-currency
  columns empty, which a FOCUS validator reports: those rows are not conformant until a rate is
  configured.

Text cells that a spreadsheet would read as a formula (starting with = + - @, tab or carriage
return) get a leading apostrophe, because tenant and project names come from users.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from shared.ledger.models import LedgerEntry, shown_backend

FOCUS_VERSION = "1.2"
GATEWAY = "QCOS"
SERVICE_NAME = "QCOS Quantum Jobs"
# Units suppliers price in that are not national currencies. A three-letter code outside this
# set is taken for an ISO 4217 code; any other code is treated as virtual.
VIRTUAL_CURRENCIES = frozenset({"HQC"})  # Quantinuum H-System Quantum Credits

COLUMNS: tuple[str, ...] = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingCurrency",
    "PricingCurrencyEffectiveCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ResourceId",
    "ResourceName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "Tags",
    "x_Hash",
    "x_JobId",
    "x_Mode",
    "x_PriceSource",
    "x_PricingCurrencyListCost",
    "x_UserId",
)

# Written from numbers we format ourselves, so never mistaken for a formula (a leading "-" is a
# negative amount there, and must stay).
_NUMERIC = frozenset(
    {
        "BilledCost",
        "ConsumedQuantity",
        "ContractedCost",
        "EffectiveCost",
        "ListCost",
        "PricingCurrencyEffectiveCost",
        "PricingQuantity",
        "x_PricingCurrencyListCost",
    }
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DIGITS = 30  # digits either side of the point an amount may have: far beyond money


def is_national_currency(code: str) -> bool:
    """True for an ISO 4217 code (three capital letters, not a known supplier credit)."""
    return re.fullmatch("[A-Z]{3}", code) is not None and code not in VIRTUAL_CURRENCIES


def focus_row(entry: LedgerEntry, *, issuer: str = GATEWAY) -> dict[str, str]:
    """The FOCUS row of `entry`, every column of `COLUMNS` as text.

    `issuer` names the operator (provider and invoice issuer). Raises `ValueError` when the
    entry's time is not ISO 8601 or an amount is not decimal text.
    """
    start = _whole_second(entry.time)
    month = start.replace(day=1, hour=0, minute=0, second=0)
    next_month = (month + timedelta(days=32)).replace(day=1)
    cost, list_cost = _amount(entry.cost), _amount(entry.list_cost)
    national = is_national_currency(entry.currency)
    backend = shown_backend(entry)
    resource = f"{entry.supplier}/{backend}"
    row = {
        "BilledCost": cost if national else "",
        "BillingAccountId": entry.tenant or entry.user_id,
        "BillingAccountName": "",
        "BillingAccountType": "Tenant" if entry.tenant else "User",
        "BillingCurrency": entry.currency if national else "",
        "BillingPeriodEnd": _iso(next_month),
        "BillingPeriodStart": _iso(month),
        "ChargeCategory": "Usage",
        "ChargeClass": "",  # null: not a correction of an invoiced period
        "ChargeDescription": f"{entry.shots} shots on {resource} ({entry.mode})",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _iso(start + timedelta(seconds=1)),
        "ChargePeriodStart": _iso(start),
        "ConsumedQuantity": str(entry.shots),
        "ConsumedUnit": "Shots",
        "ContractedCost": list_cost if national else "",
        "EffectiveCost": cost if national else "",
        "InvoiceIssuerName": issuer,
        "ListCost": list_cost if national else "",
        "PricingCurrency": entry.currency,
        "PricingCurrencyEffectiveCost": cost,
        "PricingQuantity": "1",
        "PricingUnit": "Jobs",
        "ProviderName": issuer,
        "PublisherName": issuer if entry.supplier == "local" else entry.supplier,
        "ResourceId": resource,
        "ResourceName": backend,
        "ServiceCategory": "Compute",
        "ServiceName": SERVICE_NAME,
        "ServiceSubcategory": "Quantum",
        "SkuId": resource,
        "SubAccountId": entry.user_id,
        "Tags": json.dumps({"project": entry.project}, ensure_ascii=False) if entry.project else "",
        "x_Hash": entry.hash,
        "x_JobId": entry.job_id,
        "x_Mode": entry.mode,
        "x_PriceSource": entry.price_source,
        "x_PricingCurrencyListCost": list_cost,
        "x_UserId": entry.user_id,
    }
    return {name: value if name in _NUMERIC else _guarded(value) for name, value in row.items()}


def to_csv(entries: Iterable[LedgerEntry], *, issuer: str = GATEWAY) -> str:
    """CSV text: the header (`COLUMNS`), then one row per entry, lines ending in CRLF."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(focus_row(entry, issuer=issuer) for entry in entries)
    return buffer.getvalue()


def _guarded(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def _whole_second(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"ledger time {text[:40]!r} is not ISO 8601") from exc
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(text: str) -> str:
    """Decimal text as FOCUS numbers are written: no exponent, no "+", no "-0"."""
    try:
        amount = Decimal(text)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"ledger amount {text[:40]!r} is not decimal text") from exc
    if not amount.is_finite() or not -_DIGITS < amount.adjusted() < _DIGITS:
        raise ValueError(f"ledger amount {text[:40]!r} is out of range")
    return format(amount.copy_abs() if amount.is_zero() else amount, "f")
