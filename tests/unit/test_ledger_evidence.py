"""`shared.ledger.evidence`: signed evidence bundles, built from stored chains and checked."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ledger.evidence import FORMAT, build_bundle, verify_bundle
from shared.ledger.models import GENESIS, LedgerEntry
from shared.signing import new_private_key, public_b64, sign

KEY = new_private_key()
OTHER_KEY = new_private_key()


def charge(user_id: str, job_id: str, **fields: Any) -> LedgerEntry:
    values: dict[str, Any] = {
        "user_id": user_id,
        "job_id": job_id,
        "seq": 0,
        "time": "2026-11-21T08:00:00.000Z",
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


def sealed(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """`entries` chained in this order as seqs 1, 2, 3, ..."""
    chain: list[LedgerEntry] = []
    for seq, entry in enumerate(entries, start=1):
        chain.append(entry.sealed(seq, chain[-1].hash if chain else GENESIS))
    return chain


def sealed_chain(user_id: str, length: int, **fields: Any) -> list[LedgerEntry]:
    return sealed([charge(user_id, f"{user_id}-job-{n}", **fields) for n in range(1, length + 1)])


def bundle_of(
    selected: list[LedgerEntry],
    chains: dict[str, list[LedgerEntry]],
    *,
    tenant: str | None = "acme",
    ephemeral: bool = False,
    heads: dict[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    return build_bundle(
        selected,
        chains,
        bundle_id="bundle-1",
        created_at="2026-11-30T12:00:00.000Z",
        period_from="2026-11-01T00:00:00.000Z",
        period_to="2026-12-01T00:00:00.000Z",
        tenant=tenant,
        key=KEY,
        key_ephemeral=ephemeral,
        heads=heads,
    )


def resigned(bundle: dict[str, Any], key: Any = KEY) -> dict[str, Any]:
    """`bundle` signed again after an edit, as an insider holding the key could."""
    document = {name: value for name, value in bundle.items() if name != "signature"}
    if isinstance(document.get("signing"), dict):
        document["signing"] = {**document["signing"], "public_key": public_b64(key)}
    return {**document, "signature": sign(key, document)}


def two_chains() -> dict[str, list[LedgerEntry]]:
    return {"bob": sealed_chain("bob", 2), "alice": sealed_chain("alice", 3)}


def whole(chains: dict[str, list[LedgerEntry]]) -> list[LedgerEntry]:
    return [entry for chain in chains.values() for entry in chain]


# --- building ---------------------------------------------------------------------------------


def test_a_bundle_of_whole_chains_verifies_by_its_own_key_and_by_the_signers() -> None:
    # given
    chains = two_chains()
    # when
    bundle = bundle_of(whole(chains), chains)
    # then
    assert verify_bundle(bundle) == []
    assert verify_bundle(bundle, public_key=public_b64(KEY)) == []


def test_a_bundle_survives_a_round_trip_through_json() -> None:
    # given
    chains = two_chains()
    bundle = bundle_of(whole(chains), chains)
    # when
    reread = json.loads(json.dumps(bundle))
    # then
    assert reread == bundle
    assert verify_bundle(reread) == []


def test_the_bundle_layout() -> None:
    # given two users' chains, listed out of order
    chains = two_chains()
    # when
    bundle = bundle_of(list(reversed(whole(chains))), chains, ephemeral=True)
    # then
    assert bundle["format"] == FORMAT == "qcos-ledger-evidence/1"
    assert (bundle["id"], bundle["created_at"], bundle["tenant"]) == (
        "bundle-1",
        "2026-11-30T12:00:00.000Z",
        "acme",
    )
    assert bundle["period"] == {
        "from": "2026-11-01T00:00:00.000Z",
        "to": "2026-12-01T00:00:00.000Z",
    }
    assert [c["user_id"] for c in bundle["chains"]] == ["alice", "bob"]
    alice = bundle["chains"][0]
    assert (alice["first_seq"], alice["last_seq"]) == (1, 3)
    assert alice["entries"] == [asdict(e) for e in chains["alice"]]
    assert (alice["links"], alice["breaks"]) == ([], [])
    assert bundle["signing"] == {
        "algorithm": "Ed25519",
        "public_key": public_b64(KEY),
        "ephemeral": True,
    }
    assert bundle["totals"] == {
        "entries": 5,
        "shots": 5000,
        "cost": {"USD": "401.50"},
        "list_cost": {"USD": "401.50"},
    }


def test_totals_are_exact_decimal_sums_per_currency_written_without_exponents() -> None:
    # given amounts a float would round, one in exponent notation, and credits
    entries = sealed(
        [
            charge("alice", "j1", cost="0.1", list_cost="1E+2"),
            charge("alice", "j2", cost="0.2", list_cost="0"),
            charge("alice", "j3", cost="12.5", list_cost="12.5", currency="HQC", shots=10),
        ]
    )
    # when
    bundle = bundle_of(entries, {"alice": entries})
    # then
    assert bundle["totals"] == {
        "entries": 3,
        "shots": 2010,
        "cost": {"HQC": "12.5", "USD": "0.3"},
        "list_cost": {"HQC": "12.5", "USD": "100"},
    }
    assert verify_bundle(bundle) == []


def test_gaps_in_the_selection_are_covered_by_links_that_reveal_no_entry() -> None:
    # given entries 2 and 5 of a chain of 6 selected (3 and 4 are another tenant's)
    chain = sealed_chain("alice", 6)
    # when
    bundle = bundle_of([chain[1], chain[4]], {"alice": chain})
    # then
    section = bundle["chains"][0]
    assert (section["first_seq"], section["last_seq"]) == (2, 5)
    assert [e["seq"] for e in section["entries"]] == [2, 5]
    assert section["links"] == [
        {"seq": e.seq, "prev_hash": e.prev_hash, "hash": e.hash} for e in chain[2:4]
    ]
    assert bundle["totals"]["entries"] == 2
    assert verify_bundle(bundle) == []


def test_a_tampered_stored_row_makes_the_bundle_fail_though_it_is_signed() -> None:
    # given entry 2's cost changed in storage after it was charged
    chain = sealed_chain("alice", 3)
    chain[1] = replace(chain[1], cost="0.01")
    # when
    bundle = bundle_of(chain, {"alice": chain})
    # then
    problems = verify_bundle(bundle)
    assert bundle["chains"][0]["breaks"] == [
        {"seq": 2, "problem": "hash does not match its fields"}
    ]
    assert "chain 'alice': entry 2: hash does not match its fields" in problems
    assert any("the stored chain was broken when the bundle was made" in p for p in problems)


def test_a_tampered_stored_row_outside_the_selection_is_still_recorded() -> None:
    # given entry 4 of 5 altered in storage, and only entries 1 and 2 selected
    chain = sealed_chain("alice", 5)
    chain[3] = replace(chain[3], shots=1)
    # when
    bundle = bundle_of(chain[:2], {"alice": chain})
    # then
    assert verify_bundle(bundle) == [
        "chain 'alice': the stored chain was broken when the bundle was made: "
        "entry 4: 'hash does not match its fields'"
    ]


def test_a_stored_entry_removed_from_the_end_is_recorded_when_the_head_is_given() -> None:
    # given the last of 3 entries deleted, its head row still at 3
    chain = sealed_chain("alice", 3)
    head = (3, chain[-1].hash)
    # when
    bundle = bundle_of(chain[:2], {"alice": chain[:2]}, heads={"alice": head})
    # then
    assert verify_bundle(bundle) == [
        "chain 'alice': the stored chain was broken when the bundle was made: "
        "entry 3: 'entry 3 is missing (the chain head is at seq 3)'"
    ]


def test_a_stored_row_of_the_wrong_shape_outside_the_selection_is_recorded() -> None:
    # given entry 2 of 3 stored with its seq as text, entries 1 and 3 selected
    chain = sealed_chain("alice", 3)
    chain[1] = replace(chain[1], seq="2")  # type: ignore[arg-type]
    # when
    bundle = bundle_of([chain[0], chain[2]], {"alice": chain})
    # then
    assert bundle["chains"][0]["links"] == []
    assert verify_bundle(bundle) == [
        "chain 'alice': entry 2 is missing",
        "chain 'alice': the stored chain was broken when the bundle was made: "
        "entry 0: \"entry 'alice-job-2' has no numeric seq\"",
        "chain 'alice': the stored chain was broken when the bundle was made: "
        "entry 2: 'entry 2 is missing'",
    ]


def test_building_refuses_a_selected_entry_of_the_wrong_shape() -> None:
    # given
    chain = sealed_chain("alice", 1)
    chain[0] = replace(chain[0], shots="1000")  # type: ignore[arg-type]
    # when / then
    with pytest.raises(ValueError, match="entry 'alice-job-1' of 'alice' is malformed"):
        bundle_of(chain, {"alice": chain})


def test_a_bundle_without_a_tenant_may_hold_every_tenants_entries() -> None:
    # given
    chain = sealed([charge("alice", "j1", tenant="acme"), charge("alice", "j2", tenant="")])
    # when
    bundle = bundle_of(chain, {"alice": chain}, tenant=None)
    # then
    assert bundle["tenant"] is None
    assert verify_bundle(bundle) == []


def test_building_refuses_an_entry_of_another_tenant() -> None:
    # given
    chain = sealed([charge("alice", "j1", tenant="globex")])
    # when / then
    with pytest.raises(ValueError, match="tenant 'globex'"):
        bundle_of(chain, {"alice": chain}, tenant="acme")


def test_building_refuses_an_entry_whose_chain_was_not_read() -> None:
    # given
    chain = sealed_chain("alice", 1)
    # when / then
    with pytest.raises(ValueError, match="no stored chain for user 'alice'"):
        bundle_of(chain, {})


def test_building_refuses_an_amount_that_is_not_decimal_text() -> None:
    # given
    chain = sealed([charge("alice", "j1", cost="eighty")])
    # when / then
    with pytest.raises(ValueError, match="'eighty' is not decimal text"):
        bundle_of(chain, {"alice": chain})


# --- tampering with the bundle file -----------------------------------------------------------

ENTRY_FIELDS = [name for name in asdict(charge("a", "b")) if name != "user_id"]


@pytest.mark.parametrize("field", ENTRY_FIELDS)
def test_altering_any_entry_field_in_the_bundle_is_detected_even_when_resigned(field: str) -> None:
    # given a valid bundle, and one of its entries changed in one field
    chains = two_chains()
    bundle = bundle_of(whole(chains), chains)
    altered = copy.deepcopy(bundle)
    entry = altered["chains"][0]["entries"][1]
    entry[field] = entry[field] + 1 if isinstance(entry[field], int) else entry[field] + "0"
    # when
    problems = verify_bundle(altered)
    problems_resigned = verify_bundle(resigned(altered))
    # then the signature no longer matches; signed again, the entry's own hash still fails
    assert "the signature does not verify with the bundle's own public key" in problems
    assert problems_resigned != []


def test_altering_the_user_of_an_entry_is_detected() -> None:
    # given
    chains = two_chains()
    altered = bundle_of(whole(chains), chains)
    altered["chains"][0]["entries"][0]["user_id"] = "bob"
    # when
    problems = verify_bundle(resigned(altered))
    # then
    assert "chain 'alice': entry 1 belongs to user 'bob'" in problems
    assert "chain 'alice': entry 1: hash does not match its fields" in problems


def test_altering_a_total_is_detected_even_when_resigned() -> None:
    # given
    chains = two_chains()
    altered = bundle_of(whole(chains), chains)
    altered["totals"]["cost"]["USD"] = "401.49"
    altered["totals"]["shots"] = 4999
    # when
    problems = verify_bundle(resigned(altered))
    # then
    assert problems == [
        "totals.shots is 4999, the entries give 5000",
        "totals.cost is {'USD': '401.49'}, the entries give {'USD': '401.50'}",
    ]


def test_a_total_written_differently_but_equal_is_accepted() -> None:
    # given
    chains = two_chains()
    bundle = bundle_of(whole(chains), chains)
    bundle["totals"]["cost"]["USD"] = "401.5000"
    # when / then
    assert verify_bundle(resigned(bundle)) == []


@pytest.mark.parametrize("position", [0, 1, 2])
def test_removing_an_entry_from_the_bundle_is_detected_even_when_resigned(position: int) -> None:
    # given alice's chain of 3, one of its entries taken out of the file
    chains = two_chains()
    altered = bundle_of(whole(chains), chains)
    del altered["chains"][0]["entries"][position]
    # when
    problems = verify_bundle(altered)
    problems_resigned = verify_bundle(resigned(altered))
    # then
    assert "the signature does not verify with the bundle's own public key" in problems
    assert f"chain 'alice': entry {position + 1} is missing" in problems_resigned


def test_removing_a_link_from_the_bundle_is_detected() -> None:
    # given entries 1 and 4 of 4 selected, with links 2 and 3; link 3 taken out
    chain = sealed_chain("alice", 4)
    altered = bundle_of([chain[0], chain[3]], {"alice": chain})
    del altered["chains"][0]["links"][1]
    # when / then
    assert verify_bundle(resigned(altered)) == ["chain 'alice': entry 3 is missing"]


def test_a_link_that_does_not_lead_to_the_next_entry_is_detected() -> None:
    # given
    chain = sealed_chain("alice", 3)
    altered = bundle_of([chain[0], chain[2]], {"alice": chain})
    altered["chains"][0]["links"][0]["hash"] = "f" * 64
    # when / then
    assert verify_bundle(resigned(altered)) == [
        "chain 'alice': prev_hash of entry 3 does not match the hash of entry 2"
    ]


def test_removing_a_whole_chain_is_detected_by_the_signature_and_the_totals() -> None:
    # given
    chains = two_chains()
    altered = bundle_of(whole(chains), chains)
    del altered["chains"][1]
    # when
    problems = verify_bundle(altered)
    # then
    assert "the signature does not verify with the bundle's own public key" in problems
    assert "totals.entries is 5, the entries give 3" in problems


def test_clearing_the_recorded_breaks_is_detected_by_the_signature() -> None:
    # given a bundle that recorded a break, with the record removed from the file
    chain = sealed_chain("alice", 3)
    chain[2] = replace(chain[2], cost="1")
    altered = bundle_of(chain[:2], {"alice": chain})
    altered["chains"][0]["breaks"] = []
    # when / then
    assert verify_bundle(altered) == [
        "the signature does not verify with the bundle's own public key"
    ]


# --- keys -------------------------------------------------------------------------------------


def test_a_wrong_public_key_fails() -> None:
    # given
    chains = two_chains()
    bundle = bundle_of(whole(chains), chains)
    # when
    problems = verify_bundle(bundle, public_key=public_b64(OTHER_KEY))
    # then
    assert problems == [
        "the bundle names another signing key than the one given",
        "the signature does not verify with the given public key",
    ]


def test_a_bundle_forged_with_another_key_fails_only_against_the_real_key() -> None:
    # given a bundle edited and signed again by someone else's key, which it now names
    chains = two_chains()
    forged = bundle_of(whole(chains), chains)
    forged["tenant"] = "globex"
    for chain in forged["chains"]:
        for entry in chain["entries"]:
            entry["tenant"] = "globex"
    forged = resigned(forged, OTHER_KEY)
    # when
    by_own_key = verify_bundle(forged)
    by_real_key = verify_bundle(forged, public_key=public_b64(KEY))
    # then the embedded key only proves the bundle unchanged since its holder signed it
    assert any("hash does not match its fields" in p for p in by_own_key)
    assert "the signature does not verify with the given public key" in by_real_key


def test_a_malformed_public_key_fails_without_raising() -> None:
    # given
    chains = two_chains()
    bundle = bundle_of(whole(chains), chains)
    # when / then
    assert "the signature does not verify with the given public key" in verify_bundle(
        bundle, public_key="not base64!"
    )


# --- malformed bundles ------------------------------------------------------------------------


def valid_bundle() -> dict[str, Any]:
    chain = sealed_chain("alice", 4)
    return bundle_of([chain[0], chain[3]], {"alice": chain})


def with_change(path: list[Any], value: Any) -> dict[str, Any]:
    """A valid bundle with the value at `path` replaced, signed again where JSON can hold it."""
    bundle = valid_bundle()
    target: Any = bundle
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return bundle if value != value else resigned(bundle)  # NaN cannot be signed


MALFORMED: list[tuple[str, Any]] = [
    ("none", None),
    ("list", []),
    ("text", "qcos-ledger-evidence/1"),
    ("empty object", {}),
    ("format only", {"format": FORMAT}),
    ("other format", {**valid_bundle(), "format": "qcos-ledger-evidence/2"}),
    ("no signature", {k: v for k, v in valid_bundle().items() if k != "signature"}),
    ("signature not text", {**valid_bundle(), "signature": 42}),
    ("signing not an object", with_change(["signing"], "Ed25519")),
    ("chains not a list", with_change(["chains"], {"alice": []})),
    ("chain not an object", with_change(["chains", 0], None)),
    ("entries not a list", with_change(["chains", 0, "entries"], "x")),
    ("entry not an object", with_change(["chains", 0, "entries", 0], [1, 2])),
    ("entry missing a field", with_change(["chains", 0, "entries", 0], {"seq": 1})),
    ("entry with an extra field", with_change(["chains", 0, "entries", 0, "extra"], 1)),
    ("seq as text", with_change(["chains", 0, "entries", 0, "seq"], "1")),
    ("shots as a boolean", with_change(["chains", 0, "entries", 0, "shots"], True)),
    ("cost not decimal", with_change(["chains", 0, "entries", 0, "cost"], "eighty")),
    ("cost as a number", with_change(["chains", 0, "entries", 0, "cost"], 80.3)),
    ("cost astronomically large", with_change(["chains", 0, "entries", 0, "cost"], "1e999999999")),
    ("cost not a number", with_change(["chains", 0, "entries", 0, "cost"], "NaN")),
    ("link without hash", with_change(["chains", 0, "links", 0], {"seq": 2, "prev_hash": "x"})),
    ("first_seq as text", with_change(["chains", 0, "first_seq"], "1")),
    ("a range the wrong way", with_change(["chains", 0, "last_seq"], 0)),
    ("a range of a trillion", with_change(["chains", 0, "last_seq"], 10**12)),
    ("breaks not a list", with_change(["chains", 0, "breaks"], None)),
    ("a break that is text", with_change(["chains", 0, "breaks"], ["broken"])),
    ("totals missing", with_change(["totals"], None)),
    ("totals as text", with_change(["totals", "cost"], "80.30 USD")),
    ("period missing", with_change(["period"], None)),
    ("tenant a number", with_change(["tenant"], 7)),
    ("a float that JSON cannot hold", with_change(["id"], float("nan"))),
    ("a key that is not text", {**valid_bundle(), 1: "one"}),
]


@pytest.mark.parametrize(("case", "bundle"), MALFORMED, ids=[case for case, _ in MALFORMED])
def test_a_malformed_bundle_is_reported_never_raised(case: str, bundle: Any) -> None:
    # given a malformed bundle
    # when
    problems = verify_bundle(bundle)
    # then
    assert problems and all(isinstance(p, str) for p in problems), case


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200)
@given(value=JSON, depth=st.integers(min_value=0, max_value=4), pick=st.integers(min_value=0))
def test_any_json_value_anywhere_in_a_bundle_gives_problems_as_text(
    value: Any, depth: int, pick: int
) -> None:
    # given a valid bundle with one value, somewhere inside it, replaced by any JSON value
    bundle: Any = valid_bundle()
    target = bundle
    for _ in range(depth):
        children = list(target.items()) if isinstance(target, dict) else list(enumerate(target))
        containers = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
        if not containers:
            break
        target = containers[pick % len(containers)][1]
    keys = list(target) if isinstance(target, dict) else list(range(len(target)))
    target[keys[pick % len(keys)]] = value
    # when
    problems = verify_bundle(bundle)
    # then
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
