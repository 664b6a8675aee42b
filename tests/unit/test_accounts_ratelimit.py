"""`shared.accounts.ratelimit`: a key's requests per minute, counted by leases in one shared row,
against an in-memory table (the HTTP-level behaviour is in tests/functions/test_limits_api.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.accounts import ratelimit
from shared.accounts.ratelimit import Decision, RateLimiter, lease_size
from shared.errors import RateLimited
from shared.storage.clients import API_KEYS_TABLE
from tests.tables import MemoryStorage, MemoryTable

MINUTE = 1_800_000_000  # a window's start (epoch seconds, a multiple of 60)
KEY = "0123456789abcdef"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The limiter's time, 10 s into the window that starts at MINUTE; set `now` to move it."""
    fake = SimpleNamespace(now=MINUTE + 10.0)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: fake.now))
    return fake


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


def table_of(storage: MemoryStorage) -> MemoryTable:
    return storage.table(API_KEYS_TABLE)


def allowed(limiter: RateLimiter, n: int, limit: int) -> list[Decision]:
    return [d for d in (limiter.decide(KEY, limit) for _ in range(n)) if d.allowed]


def test_a_key_gets_its_limit_in_a_minute_and_the_next_minute_starts_afresh(
    clock: SimpleNamespace, storage: MemoryStorage
) -> None:
    # given one instance and a limit of 60 a minute
    limiter = RateLimiter(storage.as_storage())
    # when 61 requests come in one minute
    decisions = [limiter.decide(KEY, 60) for _ in range(61)]
    # then 60 pass, counting down, and the 61st is refused until the minute ends
    assert [d.remaining for d in decisions[:60]] == list(range(59, -1, -1))
    assert all(d.allowed for d in decisions[:60])
    refused = decisions[60]
    assert not refused.allowed and refused.remaining == 0
    assert refused.reset_at == MINUTE + 60
    # and in the next minute the key is served again
    clock.now = MINUTE + 61.0
    assert limiter.decide(KEY, 60).allowed


def test_instances_sharing_the_counter_never_let_more_than_the_limit_through(
    clock: SimpleNamespace, storage: MemoryStorage
) -> None:
    # given three instances serving one key, their leases interleaved
    limiters = [RateLimiter(storage.as_storage()) for _ in range(3)]
    limit = 100
    # when each sends 100 requests in turn
    passed = sum(limiters[i % 3].decide(KEY, limit).allowed for i in range(3 * limit))
    # then no more than the limit passed, and at most the unused parts of the other
    # instances' leases were refused early
    assert limit - (lease_size(limit) - 1) * 2 <= passed <= limit
    assert int(table_of(storage).rows[(KEY, "rate")]["count"]) <= limit


def test_a_lease_costs_one_write_for_a_twentieth_of_the_limit(
    clock: SimpleNamespace, storage: MemoryStorage
) -> None:
    # given a limit of 300 (leases of 15)
    limiter = RateLimiter(storage.as_storage())
    # when 30 requests come in
    assert len(allowed(limiter, 30, 300)) == 30
    # then storage saw one read and two writes, not one write per request
    assert lease_size(300) == 15
    assert table_of(storage).calls == 3


def test_a_full_minute_is_refused_without_asking_storage_again(
    clock: SimpleNamespace, storage: MemoryStorage
) -> None:
    # given a key that used its minute
    limiter = RateLimiter(storage.as_storage())
    allowed(limiter, 11, 10)
    calls = table_of(storage).calls
    # when it keeps asking
    decisions = [limiter.decide(KEY, 10) for _ in range(50)]
    # then every request is refused and storage is not asked
    assert not any(d.allowed for d in decisions)
    assert table_of(storage).calls == calls


def test_a_failing_store_lets_requests_through_unmetered_and_counting_resumes_after(
    clock: SimpleNamespace, storage: MemoryStorage
) -> None:
    # given a store in an outage
    limiter = RateLimiter(storage.as_storage())
    table_of(storage).down()
    # when a request comes in
    decision = limiter.decide(KEY, 60)
    # then it passes, marked as not counted
    assert decision.allowed and decision.unmetered and decision.remaining == 60
    # and once the store answers, requests are counted again
    table_of(storage).down(False)
    after = limiter.decide(KEY, 60)
    assert after.allowed and not after.unmetered and after.remaining == 59


def test_a_new_limit_for_a_key_takes_effect_on_its_next_request(
    clock: SimpleNamespace, storage: MemoryStorage
) -> None:
    # given a key that used its 10 requests of this minute
    limiter = RateLimiter(storage.as_storage())
    allowed(limiter, 10, 10)
    assert not limiter.decide(KEY, 10).allowed
    # when its tier changes to 100 a minute
    decision = limiter.decide(KEY, 100)
    # then it is served, and what it used this minute still counts
    assert decision.allowed and decision.remaining == 89


def test_leases_are_a_twentieth_of_the_limit_and_at_least_one_request() -> None:
    assert [lease_size(limit) for limit in (1, 19, 20, 60, 300, 1000)] == [1, 1, 1, 3, 15, 50]


def test_an_allowed_answer_carries_both_header_styles_and_no_retry_after(
    clock: SimpleNamespace,
) -> None:
    # given a request allowed 10 s into its minute, 41 left of 60
    decision = Decision(limit=60, remaining=41, reset_at=MINUTE + 60, allowed=True)
    # when / then
    assert decision.headers() == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "41",
        "X-RateLimit-Reset": str(MINUTE + 60),
        "RateLimit-Policy": '"per-key-minute";q=60;w=60',
        "RateLimit": '"per-key-minute";r=41;t=50',
    }


def test_a_refusal_is_a_429_saying_when_to_retry(clock: SimpleNamespace) -> None:
    # given a request refused with 49.5 s of the minute left
    clock.now = MINUTE + 10.5
    decision = Decision(limit=60, remaining=0, reset_at=MINUTE + 60, allowed=False)
    # when
    error = decision.refusal()
    # then the wait is rounded up, and the error carries every header
    assert isinstance(error, RateLimited) and error.status == 429
    assert error.headers["Retry-After"] == "50"
    assert error.headers["RateLimit"] == '"per-key-minute";r=0;t=50'
    assert "60 requests per minute" in error.detail and "retry in 50 s" in error.detail


def test_the_wait_is_at_least_one_second(clock: SimpleNamespace) -> None:
    # given a window that has just ended as far as this clock knows
    clock.now = MINUTE + 60.2
    decision = Decision(limit=60, remaining=0, reset_at=MINUTE + 60, allowed=False)
    # then a client is never told to retry in 0 s
    assert decision.seconds_to_reset() == 1
