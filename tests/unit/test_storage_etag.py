"""`until_written`, the one retry loop of conditional writes: a try that lost its race is made
again (re-reading what it writes over), a decision ends it, and a row that stays contended is
reported, never retried forever."""

from __future__ import annotations

import pytest

from shared.storage import LOST, Lost, until_written


class Busy(Exception):
    pass


def test_a_lost_race_is_tried_again_until_a_write_wins() -> None:
    # given a row another writer changes under the first two tries
    tries: list[int] = []

    def attempt(n: int) -> str | Lost:
        tries.append(n)
        return LOST if n < 2 else "written"

    # when / then the third try's outcome is the answer, each try knowing its number
    assert until_written(attempt, busy=Busy) == "written"
    assert tries == [0, 1, 2]


def test_a_decision_ends_the_loop_at_once_even_a_falsy_one() -> None:
    # given tries that decide there is nothing to write (None, False, 0 are outcomes too)
    for outcome in (None, False, 0):
        tries: list[int] = []

        def attempt(n: int, outcome: object = outcome, tries: list[int] = tries) -> object:
            tries.append(n)
            return outcome

        # then the first try's outcome is the answer
        assert until_written(attempt, busy=Busy) is outcome
        assert tries == [0]


def test_a_row_that_stays_contended_raises_busy_after_the_tries() -> None:
    tries: list[int] = []

    def attempt(n: int) -> Lost:
        tries.append(n)
        return LOST

    with pytest.raises(Busy):
        until_written(attempt, busy=Busy, tries=5)
    assert tries == [0, 1, 2, 3, 4]


def test_a_refusal_raised_by_a_try_is_not_retried() -> None:
    tries: list[int] = []

    def attempt(n: int) -> Lost:
        tries.append(n)
        raise ValueError("over the limit")

    with pytest.raises(ValueError, match="over the limit"):
        until_written(attempt, busy=Busy)
    assert tries == [0]
