"""`shared.jobs.repository`: the pure parts, how a job's blobs are named and what fits in its row
(the repository's reads and writes run against Azurite in tests/integration/)."""

from __future__ import annotations

from shared.jobs.repository import ROW_TEXT_MAX, blob_stem, fits_in_row


def test_a_jobs_blobs_live_under_its_owner_with_a_nonce_of_their_own() -> None:
    # given two jobs of one user that used the same id (the first one's row since removed)
    first, second = blob_stem("user-1", "job-1"), blob_stem("user-1", "job-1")
    # then their blobs never overwrite each other
    assert first.startswith("user-1/job-1-") and second.startswith("user-1/job-1-")
    assert first != second
    assert blob_stem("user-1", "job-1", nonce="ab12") == "user-1/job-1-ab12"


def test_text_fits_in_a_row_up_to_the_bound_in_characters() -> None:
    assert fits_in_row("x" * ROW_TEXT_MAX)
    assert not fits_in_row("x" * (ROW_TEXT_MAX + 1))
    assert fits_in_row("")


def test_text_outside_the_basic_plane_counts_twice_as_storage_counts_it() -> None:
    # given emoji: one character each, two UTF-16 units each (what a string property holds)
    half = "\N{GRINNING FACE}" * (ROW_TEXT_MAX // 2)
    # then half the bound in such characters fits, one more does not
    assert fits_in_row(half)
    assert not fits_in_row(half + "\N{GRINNING FACE}")
