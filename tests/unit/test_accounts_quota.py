"""`shared.accounts.quota`: daily job quotas reserved at submit and given back when a job never ran,
against an in-memory table (the races through HTTP are in tests/functions/)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared import clock
from shared.accounts.quota import Hold, QuotaExceeded, Quotas, QuotaUse, seconds_to_midnight
from shared.accounts.tiers import TIERS, Tier, TierName
from shared.storage.clients import QUOTAS_TABLE
from tests.tables import MemoryStorage, MemoryTable

FREE = TIERS[TierName.FREE]  # 10 jobs a day
ENTERPRISE = TIERS[TierName.ENTERPRISE]  # unlimited
THREE_A_DAY = Tier(
    TierName.FREE, daily_jobs=3, max_qubits=5, max_shots=10, requests_per_minute=60, price_eur=0
)
NOON = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)
USER = "user-1"


@pytest.fixture(autouse=True)
def at_noon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: NOON)


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


def quotas(storage: MemoryStorage, jobs_today: int = 0) -> Quotas:
    return Quotas(storage.as_storage(), count_today=lambda user_id: jobs_today)


def counters(storage: MemoryStorage) -> MemoryTable:
    return storage.table(QUOTAS_TABLE)


def used(storage: MemoryStorage, day: str = "2026-03-14") -> int:
    row = counters(storage).row(USER, f"day-{day}")
    return 0 if row is None else int(row["used"])


# --- reserving ---------------------------------------------------------------------------------


def test_a_user_reserves_up_to_the_daily_limit_and_the_next_is_refused_until_midnight(
    storage: MemoryStorage,
) -> None:
    # given a tier of three jobs a day
    q = quotas(storage)
    # when four jobs are submitted
    for n in range(3):
        assert q.reserve(USER, THREE_A_DAY, ref=f"job-{n}") == Hold(USER, "2026-03-14", f"job-{n}")
    with pytest.raises(QuotaExceeded) as refused:
        q.reserve(USER, THREE_A_DAY, ref="job-3")
    # then the fourth is a 403 saying what is left and when it resets (12 h from noon)
    error = refused.value
    assert error.status == 403 and error.error_code == "QUOTA_EXCEEDED"
    assert error.headers == {"Retry-After": str(12 * 3600)}
    assert error.extra == {"daily_limit": 3, "used": 3}
    assert "3 jobs a day; 0 left today, 1 asked" in error.detail
    assert used(storage) == 3


def test_a_submission_of_several_runs_takes_them_all_or_none(storage: MemoryStorage) -> None:
    # given two of three jobs left
    q = quotas(storage)
    q.reserve(USER, THREE_A_DAY, ref="job-0")
    # when a fan-out of three runs is submitted
    with pytest.raises(QuotaExceeded, match="2 left today, 3 asked"):
        q.reserve(USER, THREE_A_DAY, ref="net-1", runs=3)
    # then nothing was taken, and two runs still fit
    assert used(storage) == 1
    assert q.reserve(USER, THREE_A_DAY, ref="net-2", runs=2) is not None
    assert used(storage) == 3


def test_instances_sharing_the_counter_accept_exactly_the_limit(storage: MemoryStorage) -> None:
    # given two instances, each with what it last wrote of the counter
    a, b = quotas(storage), quotas(storage)
    accepted = refused = 0
    # when they take turns submitting twenty jobs against a limit of ten
    for n in range(20):
        try:
            (a if n % 2 else b).reserve(USER, FREE, ref=f"job-{n}")
            accepted += 1
        except QuotaExceeded:
            refused += 1
    # then exactly ten were accepted
    assert (accepted, refused) == (10, 10)
    assert used(storage) == 10


def test_an_unlimited_tier_moves_no_counter_and_its_jobs_are_its_usage(
    storage: MemoryStorage,
) -> None:
    # given an enterprise user who ran 250 jobs today
    q = quotas(storage, jobs_today=250)
    # when it submits
    hold = q.reserve(USER, ENTERPRISE, ref="job-0")
    # then nothing is reserved or written, and its usage is its jobs
    assert hold is None
    assert counters(storage).rows == {}
    assert q.use(USER, ENTERPRISE) == QuotaUse(day="2026-03-14", used=250, limit=None)


def test_the_counter_starts_afresh_each_utc_day(
    storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a user who used its day
    q = quotas(storage)
    for n in range(3):
        q.reserve(USER, THREE_A_DAY, ref=f"job-{n}")
    # when the next UTC day begins
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 3, 15, 0, 0, 1, tzinfo=UTC))
    # then it has its three jobs again, and yesterday's count stands
    assert q.use(USER, THREE_A_DAY).remaining == 3
    assert q.reserve(USER, THREE_A_DAY, ref="job-4") is not None
    assert used(storage, "2026-03-14") == 3 and used(storage, "2026-03-15") == 1


# --- giving back -------------------------------------------------------------------------------


def test_a_hold_whose_job_was_never_written_is_given_back_once(storage: MemoryStorage) -> None:
    # given a reservation of two runs for a request that then failed
    q = quotas(storage)
    hold = q.reserve(USER, THREE_A_DAY, ref="net-1", runs=2)
    # when it is given back, twice
    first, second = q.release_hold(hold), q.release_hold(hold)
    # then the runs came back once
    assert (first, second) == (True, False)
    assert used(storage) == 0
    assert q.release_hold(None) is False  # an unlimited tier's "hold"


def test_the_hold_of_an_accepted_job_cannot_be_given_back_after_the_next_write(
    storage: MemoryStorage,
) -> None:
    # given a job whose row was written (its hold accepted), and another submission after it
    q = quotas(storage)
    hold = q.reserve(USER, THREE_A_DAY, ref="job-0")
    q.accepted(hold)
    q.reserve(USER, THREE_A_DAY, ref="job-1")
    # when a late give-back of the first hold comes in
    # then it finds nothing to give back: the job counts
    assert q.release_hold(hold) is False
    assert used(storage) == 2


def test_a_job_that_never_ran_is_refunded_once_however_often_it_is_released(
    storage: MemoryStorage,
) -> None:
    # given a user with two jobs reserved
    q = quotas(storage)
    q.reserve(USER, THREE_A_DAY, ref="job-0")
    q.reserve(USER, THREE_A_DAY, ref="job-1")
    # when one of them is cancelled before it ran, and the release is delivered three times
    results = [q.release(USER, "2026-03-14", 1, ref="job-1") for _ in range(3)]
    # then one run came back
    assert results == [True, False, False]
    assert used(storage) == 1
    assert q.use(USER, THREE_A_DAY) == QuotaUse(day="2026-03-14", used=1, limit=3)


def test_a_refund_never_takes_the_counter_below_zero_nor_refunds_nothing(
    storage: MemoryStorage,
) -> None:
    # given one run used
    q = quotas(storage)
    q.reserve(USER, THREE_A_DAY, ref="job-0")
    # when more runs than were used are released, and then zero runs
    assert q.release(USER, "2026-03-14", 5, ref="net-1") is True
    assert q.release(USER, "2026-03-14", 0, ref="net-2") is False
    # then the counter stops at zero
    assert used(storage) == 0


def test_a_refund_for_a_day_without_a_counter_is_remembered_but_moves_nothing(
    storage: MemoryStorage,
) -> None:
    # given no reservation at all on the day
    q = quotas(storage)
    # when a release comes in for it, twice
    assert q.release(USER, "2026-03-13", 1, ref="job-9") is True
    assert q.release(USER, "2026-03-13", 1, ref="job-9") is False
    # then no counter was made for that day
    assert counters(storage).row(USER, "day-2026-03-13") is None


# --- what the user is told ---------------------------------------------------------------------


def test_the_usage_tells_what_remains_and_when_the_day_resets() -> None:
    assert QuotaUse(day="2026-03-14", used=4, limit=10).remaining == 6
    assert QuotaUse(day="2026-03-14", used=12, limit=10).remaining == 0  # never negative
    assert QuotaUse(day="2026-03-14", used=12, limit=None).remaining is None
    assert QuotaUse(day="2026-12-31", used=0, limit=10).resets_at == "2027-01-01T00:00:00.000Z"


def test_the_wait_until_midnight_is_whole_seconds_and_never_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert seconds_to_midnight() == 12 * 3600
    monkeypatch.setattr(
        clock, "utcnow", lambda: datetime(2026, 3, 14, 23, 59, 59, 999_000, tzinfo=UTC)
    )
    assert seconds_to_midnight() == 1
