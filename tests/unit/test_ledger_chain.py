"""`shared.ledger.chain.verify_chain`: one partition's hash chain, and its head row."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.ledger.chain import Break, verify_chain
from shared.ledger.models import GENESIS, LedgerEntry

USER = "user-1"


def charge(job_id: str, **fields: Any) -> LedgerEntry:
    values: dict[str, Any] = {
        "user_id": USER,
        "job_id": job_id,
        "seq": 0,
        "time": "2026-11-21T08:00:00.000Z",
        "tenant": "acme",
        "project": "",
        "supplier": "braket",
        "backend": "forte-1",
        "mode": "emulated",
        "shots": 1000,
        "cost": "0",
        "currency": "USD",
        "list_cost": "80.30",
        "price_source": "pricebook 2026-11-21",
    }
    values.update(fields)
    return LedgerEntry(**values)


def sealed_chain(length: int) -> list[LedgerEntry]:
    """Entries 1..length of USER's chain, each sealed onto the one before."""
    chain: list[LedgerEntry] = []
    for seq in range(1, length + 1):
        prev_hash = chain[-1].hash if chain else GENESIS
        chain.append(charge(f"job-{seq}").sealed(seq, prev_hash))
    return chain


def head_of(chain: list[LedgerEntry]) -> tuple[int, str]:
    return chain[-1].seq, chain[-1].hash


# --- intact chains ----------------------------------------------------------------------------


def test_an_intact_chain_has_no_breaks() -> None:
    # given
    chain = sealed_chain(5)
    # when / then
    assert verify_chain(chain) == []
    assert verify_chain(chain, head=head_of(chain)) == []


def test_entries_may_be_given_in_any_order() -> None:
    # given an intact chain, shuffled
    chain = sealed_chain(8)
    shuffled = random.Random(7).sample(chain, len(chain))
    # when / then
    assert verify_chain(shuffled, head=head_of(chain)) == []


def test_an_empty_partition_is_intact_without_a_head_and_with_an_empty_one() -> None:
    # given / when / then
    assert verify_chain([]) == []
    assert verify_chain([], head=(0, GENESIS)) == []


# --- altered entries --------------------------------------------------------------------------


def test_an_altered_field_is_reported_at_its_entry() -> None:
    # given entry 3's cost changed in storage
    chain = sealed_chain(5)
    chain[2] = replace(chain[2], cost="0.01")
    # when
    breaks = verify_chain(chain, head=head_of(chain))
    # then
    assert breaks == [Break(USER, 3, "hash does not match its fields")]


def test_an_altered_entry_that_was_resealed_breaks_the_link_of_the_next_one() -> None:
    # given entry 3 changed and given a fresh hash, entry 4 left alone
    chain = sealed_chain(5)
    chain[2] = replace(chain[2], cost="0.01").sealed(3, chain[1].hash)
    # when
    breaks = verify_chain(chain, head=head_of(chain))
    # then
    assert breaks == [Break(USER, 4, "prev_hash does not match the hash of entry 3")]


@given(
    length=st.integers(min_value=1, max_value=6),
    index=st.integers(min_value=0, max_value=5),
    field=st.sampled_from(
        [
            "job_id",
            "time",
            "tenant",
            "project",
            "supplier",
            "backend",
            "mode",
            "cost",
            "currency",
            "list_cost",
            "price_source",
            "prev_hash",
            "hash",
        ]
    ),
    value=st.text(max_size=8),
)
def test_any_changed_text_field_of_any_entry_is_detected(
    length: int, index: int, field: str, value: str
) -> None:
    # given one field of one entry changed to another value
    chain = sealed_chain(length)
    position = index % length
    if getattr(chain[position], field) == value:
        value += "x"
    change: dict[str, Any] = {field: value}
    chain[position] = replace(chain[position], **change)
    # when / then
    assert verify_chain(chain, head=head_of(sealed_chain(length))) != []


@given(index=st.integers(min_value=0, max_value=3), shots=st.integers())
def test_a_changed_shot_count_is_detected(index: int, shots: int) -> None:
    # given
    chain = sealed_chain(4)
    if chain[index].shots == shots:
        shots += 1
    chain[index] = replace(chain[index], shots=shots)
    # when / then
    assert verify_chain(chain) == [Break(USER, index + 1, "hash does not match its fields")]


# --- removed, added and reordered entries -----------------------------------------------------


def test_a_removed_middle_entry_is_reported_missing() -> None:
    # given entry 3 of 5 deleted
    chain = sealed_chain(5)
    del chain[2]
    # when
    breaks = verify_chain(chain, head=(5, sealed_chain(5)[-1].hash))
    # then
    assert breaks == [Break(USER, 3, "entry 3 is missing")]


def test_removed_consecutive_entries_are_reported_as_one_range() -> None:
    # given entries 2 to 4 of 6 deleted
    chain = sealed_chain(6)
    del chain[1:4]
    # when / then
    assert verify_chain(chain) == [Break(USER, 2, "entries 2 to 4 are missing")]


def test_a_removed_last_entry_is_found_only_with_the_head() -> None:
    # given the last of 5 entries deleted, the head row still at 5
    chain = sealed_chain(5)
    head = head_of(chain)
    del chain[-1]
    # when
    without_head = verify_chain(chain)
    with_head = verify_chain(chain, head=head)
    # then the rest is a valid, shorter chain: only the head shows what is gone
    assert without_head == []
    assert with_head == [Break(USER, 5, "entry 5 is missing (the chain head is at seq 5)")]


def test_a_removed_first_entry_is_reported_missing() -> None:
    # given
    chain = sealed_chain(3)
    # when / then
    assert verify_chain(chain[1:]) == [Break(USER, 1, "entry 1 is missing")]


def test_every_entry_of_a_partition_emptied_under_its_head_is_missing() -> None:
    # given / when / then
    assert verify_chain([], head=(3, "f" * 64)) == [
        Break("", 1, "entries 1 to 3 are missing (the chain head is at seq 3)")
    ]


def test_an_entry_beyond_the_head_is_reported() -> None:
    # given a sixth entry the head row never recorded
    chain = sealed_chain(6)
    head = head_of(chain[:5])
    # when / then
    assert verify_chain(chain, head=head) == [
        Break(USER, 6, "entries after the chain head (seq 5)")
    ]


def test_a_head_whose_hash_is_not_the_last_entrys_is_reported() -> None:
    # given
    chain = sealed_chain(3)
    # when / then
    assert verify_chain(chain, head=(3, "0" * 63 + "1")) == [
        Break(USER, 3, "hash does not match the chain head")
    ]


def test_entries_whose_seqs_were_swapped_are_reported() -> None:
    # given entries 2 and 3 trading places by their seq fields
    chain = sealed_chain(4)
    chain[1], chain[2] = replace(chain[1], seq=3), replace(chain[2], seq=2)
    # when
    breaks = verify_chain(chain, head=head_of(chain))
    # then
    assert Break(USER, 2, "hash does not match its fields") in breaks
    assert Break(USER, 3, "hash does not match its fields") in breaks


def test_entries_reordered_and_resealed_break_the_link_after_them() -> None:
    # given jobs 2 and 3 resealed in the opposite order, entry 4 left alone
    chain = sealed_chain(4)
    moved_up = replace(chain[2], job_id="job-3").sealed(2, chain[0].hash)
    moved_down = replace(chain[1], job_id="job-2").sealed(3, moved_up.hash)
    reordered = [chain[0], moved_up, moved_down, chain[3]]
    # when / then
    assert verify_chain(reordered) == [
        Break(USER, 4, "prev_hash does not match the hash of entry 3")
    ]


def test_a_duplicated_seq_is_reported() -> None:
    # given a second entry claiming seq 2
    chain = sealed_chain(3)
    twin = charge("job-twin").sealed(2, chain[0].hash)
    # when
    breaks = verify_chain([*chain, twin])
    # then
    assert breaks == [Break(USER, 2, "entry 2 appears twice")]


def test_a_first_entry_not_linked_to_genesis_is_reported() -> None:
    # given
    first = charge("job-1").sealed(1, "a" * 64)
    # when / then
    assert verify_chain([first]) == [
        Break(USER, 1, "prev_hash of the first entry is not the genesis hash")
    ]


def test_a_seq_below_one_is_reported() -> None:
    # given
    chain = [charge("job-0").sealed(0, GENESIS), *sealed_chain(2)]
    # when / then
    assert verify_chain(chain) == [Break(USER, 0, "seq 0 is not a chain position")]


def test_an_entry_of_another_user_is_reported() -> None:
    # given an entry moved in from another partition (and resealed there)
    chain = sealed_chain(2)
    stranger = replace(charge("job-3"), user_id="user-2").sealed(3, chain[1].hash)
    # when / then
    assert verify_chain([*chain, stranger]) == [
        Break(USER, 3, "entry belongs to user 'user-2', not 'user-1'")
    ]


def test_a_row_stored_with_values_of_the_wrong_type_is_reported_not_raised() -> None:
    # given rows as a tampered table could return them: a seq that is text, a time that is a
    # datetime (which JSON, and so the hash, cannot hold)
    chain = sealed_chain(3)
    chain[1] = replace(chain[1], seq="2")  # type: ignore[arg-type]
    chain[2] = replace(chain[2], time=datetime(2026, 11, 21, tzinfo=UTC))  # type: ignore[arg-type]
    # when
    breaks = verify_chain(chain)
    # then
    assert breaks == [
        Break(USER, 0, "entry 'job-2' has no numeric seq"),
        Break(USER, 3, "hash does not match its fields"),
        Break(USER, 2, "entry 2 is missing"),
    ]
