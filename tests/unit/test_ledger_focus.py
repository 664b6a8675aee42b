"""`shared.ledger.focus`: ledger entries as FOCUS 1.2 rows, and as CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest

from shared.ledger.focus import (
    COLUMNS,
    VIRTUAL_CURRENCIES,
    focus_row,
    is_national_currency,
    to_csv,
)
from shared.ledger.models import GENESIS, LedgerEntry
from shared.pricing.book import CURRENCIES


def charge(**fields: Any) -> LedgerEntry:
    values: dict[str, Any] = {
        "user_id": "user-1",
        "job_id": "job-1",
        "seq": 0,
        "time": "2026-11-21T08:50:22.123Z",
        "tenant": "acme",
        "project": "qaoa",
        "supplier": "braket",
        "backend": "forte-1",
        "mode": "cloud",
        "shots": 1000,
        "cost": "80.30",
        "currency": "USD",
        "list_cost": "80.30",
        "price_source": "pricebook 2026-11-21",
    }
    values.update(fields)
    return LedgerEntry(**values)


def sealed_chain(*entries: LedgerEntry) -> list[LedgerEntry]:
    chain: list[LedgerEntry] = []
    for seq, entry in enumerate(entries, start=1):
        chain.append(entry.sealed(seq, chain[-1].hash if chain else GENESIS))
    return chain


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# --- columns ----------------------------------------------------------------------------------


def test_columns_are_focus_names_then_custom_ones_with_the_x_prefix() -> None:
    # given / when
    focus = [c for c in COLUMNS if not c.startswith("x_")]
    custom = [c for c in COLUMNS if c.startswith("x_")]
    # then FOCUS columns come first, alphabetically, as the specification lists them
    assert list(COLUMNS) == focus + custom
    assert focus == sorted(focus) and custom == sorted(custom)
    assert all(re.fullmatch("[A-Z][A-Za-z]+", c) for c in focus)
    assert all(re.fullmatch("x_[A-Z][A-Za-z]+", c) for c in custom)
    assert len(set(COLUMNS)) == len(COLUMNS)


def test_the_mandatory_focus_columns_are_all_present() -> None:
    # given FOCUS 1.2's mandatory columns (and BillingAccountType: we have two account types)
    mandatory = {
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
        "ChargePeriodEnd",
        "ChargePeriodStart",
        "ContractedCost",
        "EffectiveCost",
        "InvoiceIssuerName",
        "ListCost",
        "PricingQuantity",
        "PricingUnit",
        "ProviderName",
        "PublisherName",
        "ServiceCategory",
        "ServiceName",
    }
    # when / then
    assert mandatory <= set(COLUMNS)


def test_a_row_has_every_column_in_order() -> None:
    # given / when
    row = focus_row(charge())
    # then
    assert list(row) == list(COLUMNS)
    assert all(isinstance(value, str) for value in row.values())


# --- one job's charge -------------------------------------------------------------------------


def test_a_cloud_job_priced_in_usd() -> None:
    # given
    entry = sealed_chain(charge())[0]
    # when
    row = focus_row(entry, issuer="Example Quantum Ltd")
    # then
    assert row == {
        "BilledCost": "80.30",
        "BillingAccountId": "acme",
        "BillingAccountName": "",
        "BillingAccountType": "Tenant",
        "BillingCurrency": "USD",
        "BillingPeriodEnd": "2026-12-01T00:00:00Z",
        "BillingPeriodStart": "2026-11-01T00:00:00Z",
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "ChargeDescription": "1000 shots on braket/braket_ionq_forte_1 (cloud)",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": "2026-11-21T08:50:23Z",
        "ChargePeriodStart": "2026-11-21T08:50:22Z",
        "ConsumedQuantity": "1000",
        "ConsumedUnit": "Shots",
        "ContractedCost": "80.30",
        "EffectiveCost": "80.30",
        "InvoiceIssuerName": "Example Quantum Ltd",
        "ListCost": "80.30",
        "PricingCurrency": "USD",
        "PricingCurrencyEffectiveCost": "80.30",
        "PricingQuantity": "1",
        "PricingUnit": "Jobs",
        "ProviderName": "Example Quantum Ltd",
        "PublisherName": "braket",
        "ResourceId": "braket/braket_ionq_forte_1",  # an entry of the supplier's name: the id
        "ResourceName": "braket_ionq_forte_1",
        "ServiceCategory": "Compute",
        "ServiceName": "QCOS Quantum Jobs",
        "ServiceSubcategory": "Quantum",
        "SkuId": "braket/braket_ionq_forte_1",
        "SubAccountId": "user-1",
        "Tags": '{"project": "qaoa"}',
        "x_Hash": entry.hash,
        "x_JobId": "job-1",
        "x_Mode": "cloud",
        "x_PriceSource": "pricebook 2026-11-21",
        "x_PricingCurrencyListCost": "80.30",
        "x_UserId": "user-1",
    }


def test_an_emulated_job_costs_nothing_against_the_devices_list_cost() -> None:
    # given
    entry = charge(mode="emulated", cost="0", list_cost="80.30")
    # when
    row = focus_row(entry)
    # then
    assert (row["BilledCost"], row["EffectiveCost"]) == ("0", "0")
    assert (row["ListCost"], row["ContractedCost"]) == ("80.30", "80.30")


def test_a_user_without_tenant_is_their_own_billing_account_and_untagged_means_null() -> None:
    # given
    entry = charge(tenant="", project="")
    # when
    row = focus_row(entry)
    # then
    assert (row["BillingAccountId"], row["BillingAccountType"]) == ("user-1", "User")
    assert row["Tags"] == ""


def test_the_gateways_own_simulator_is_published_by_the_gateway() -> None:
    # given / when
    row = focus_row(charge(supplier="local", backend="aer_simulator", mode="local"))
    # then
    assert (row["ProviderName"], row["PublisherName"], row["InvoiceIssuerName"]) == (
        "QCOS",
        "QCOS",
        "QCOS",
    )


def test_credits_go_to_the_pricing_currency_columns_and_leave_billing_columns_null() -> None:
    # given a Quantinuum job priced in HQC
    entry = charge(currency="HQC", cost="12.5", list_cost="12.5", supplier="azure_quantum")
    # when
    row = focus_row(entry)
    # then no amount is claimed in a national currency
    assert (row["PricingCurrency"], row["PricingCurrencyEffectiveCost"]) == ("HQC", "12.5")
    assert row["x_PricingCurrencyListCost"] == "12.5"
    for column in ("BilledCost", "BillingCurrency", "ContractedCost", "EffectiveCost", "ListCost"):
        assert row[column] == "", column


@pytest.mark.parametrize(
    ("code", "national"),
    [("USD", True), ("EUR", True), ("HQC", False), ("usd", False), ("CREDITS", False), ("", False)],
)
def test_national_currencies_are_iso_4217_codes_and_not_supplier_credits(
    code: str, national: bool
) -> None:
    # given / when / then
    assert is_national_currency(code) is national


def test_every_price_book_currency_has_been_classified() -> None:
    # given the currencies the price book may charge in
    # when / then a new one needs a decision: an ISO 4217 code, or a supplier's credits
    unknown = [c for c in CURRENCIES if c != "USD" and c not in VIRTUAL_CURRENCIES]
    assert unknown == [], "add it to VIRTUAL_CURRENCIES, or to this test if it is ISO 4217"


@pytest.mark.parametrize(
    ("time", "start", "end", "period"),
    [
        ("2026-11-21T08:50:22.999Z", "2026-11-21T08:50:22Z", "2026-11-21T08:50:23Z", "2026-11-01"),
        ("2026-12-31T23:59:59.500Z", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z", "2026-12-01"),
        ("2027-01-01T01:00:00+01:00", "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z", "2027-01-01"),
    ],
)
def test_the_charge_period_is_the_whole_second_and_the_billing_period_its_utc_month(
    time: str, start: str, end: str, period: str
) -> None:
    # given / when
    row = focus_row(charge(time=time))
    # then
    assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == (start, end)
    assert row["BillingPeriodStart"] == period + "T00:00:00Z"
    assert row["BillingPeriodStart"] <= row["ChargePeriodStart"] < row["BillingPeriodEnd"]


@pytest.mark.parametrize(
    ("text", "written"), [("1E+2", "100"), ("-0", "0"), ("+5.10", "5.10"), ("-1.50", "-1.50")]
)
def test_amounts_are_written_as_plain_decimals(text: str, written: str) -> None:
    # given / when
    row = focus_row(charge(cost=text))
    # then
    assert row["BilledCost"] == row["PricingCurrencyEffectiveCost"] == written


@pytest.mark.parametrize("bad", [{"cost": "eighty"}, {"list_cost": "NaN"}, {"cost": "1e99"}])
def test_an_amount_that_is_not_decimal_text_is_refused(bad: dict[str, str]) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="ledger amount"):
        focus_row(charge(**bad))


def test_a_time_that_is_not_iso_8601_is_refused() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="is not ISO 8601"):
        focus_row(charge(time="yesterday"))


# --- CSV --------------------------------------------------------------------------------------


def test_csv_is_the_header_then_one_row_per_entry_with_crlf_line_endings() -> None:
    # given
    entries = sealed_chain(charge(job_id="job-1"), charge(job_id="job-2"), charge(job_id="job-3"))
    # when
    text = to_csv(entries)
    # then
    rows = parsed(text)
    assert rows[0] == list(COLUMNS)
    assert [row[COLUMNS.index("x_JobId")] for row in rows[1:]] == ["job-1", "job-2", "job-3"]
    assert text.count("\r\n") == 4 and text.endswith("\r\n")


def test_csv_of_no_entries_is_the_header_alone() -> None:
    # given / when / then
    assert parsed(to_csv([])) == [list(COLUMNS)]


def test_commas_quotes_and_line_breaks_in_values_survive_the_csv() -> None:
    # given
    project = 'tele, "port"\nation'
    # when
    rows = parsed(to_csv([charge(project=project)]))
    # then
    assert json.loads(rows[1][COLUMNS.index("Tags")]) == {"project": project}


@pytest.mark.parametrize("tenant", ['=HYPERLINK("x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_text_a_spreadsheet_would_run_as_a_formula_gets_a_leading_apostrophe(tenant: str) -> None:
    # given a tenant name chosen by a user
    entry = charge(tenant=tenant)
    # when
    row = dict(zip(COLUMNS, parsed(to_csv([entry]))[1], strict=True))
    # then
    assert row["BillingAccountId"] == "'" + tenant


def test_negative_amounts_are_numbers_not_formulas() -> None:
    # given a refund-like entry
    entry = charge(cost="-1.50", list_cost="-1.50")
    # when
    row = focus_row(entry)
    # then
    assert (row["BilledCost"], row["ListCost"]) == ("-1.50", "-1.50")


def test_every_text_column_is_guarded() -> None:
    # given every text field of the entry starting with "="
    entry = charge(
        user_id="=u",
        job_id="=j",
        tenant="=t",
        project="=p",
        supplier="=s",
        backend="=b",
        mode="=m",
        price_source="=x",
        hash="=h",
    )
    # when
    row = focus_row(entry)
    # then no cell starts with "="
    assert [column for column, value in row.items() if value.startswith("=")] == []
