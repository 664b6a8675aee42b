"""`shared.idempotency`: a retried POST replays the first answer or finds the job the first attempt
made, against an in-memory table (the HTTP-level behaviour is in tests/functions/)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from shared import clock
from shared.errors import BadRequest, ValidationFailed
from shared.idempotency import Claim, Idempotency, Stored, fingerprint, in_use
from shared.storage.clients import IDEMPOTENCY_TABLE, RESULTS_CONTAINER
from tests.tables import MemoryStorage

START = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)
USER = "user-1"
KEY = "order-4711"
BODY = fingerprint("POST", "/api/v1/execute", b'{"qasm": "..."}')
JSON = "application/json"


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The module's clock; move it with `now.at`."""
    fake = SimpleNamespace(at=START)
    monkeypatch.setattr(clock, "utcnow", lambda: fake.at)
    return fake


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def keys(storage: MemoryStorage, now: SimpleNamespace) -> Idempotency:
    return Idempotency(storage.as_storage(), ttl_hours=24, lock_seconds=75)


def claim(outcome: Claim | Stored) -> Claim:
    assert isinstance(outcome, Claim), outcome
    return outcome


# --- the first request and its replays ---------------------------------------------------------


def test_a_kept_answer_is_replayed_to_the_same_request_with_only_its_lasting_headers(
    keys: Idempotency,
) -> None:
    # given a first request that made a job and answered 202
    first = claim(keys.begin(USER, KEY, BODY))
    headers = {"Location": "/api/v1/jobs/j1", "X-Request-ID": "r1", "Content-Type": JSON}
    keys.finish(first, 202, '{"job_id": "j1"}', JSON, headers)
    # when the same request comes again with the key
    replay = keys.begin(USER, KEY, BODY)
    # then the first answer comes back, without the first request's own headers
    assert replay == Stored(202, '{"job_id": "j1"}', JSON, {"Location": "/api/v1/jobs/j1"})


def test_the_first_request_owns_the_key_and_its_job_id_is_a_uuid(keys: Idempotency) -> None:
    # when
    first = claim(keys.begin(USER, KEY, BODY))
    # then
    assert first.owned and not first.resumed
    assert str(uuid.UUID(first.job_id)) == first.job_id


def test_the_same_key_with_another_request_is_refused(keys: Idempotency) -> None:
    # given a key used for one request
    keys.finish(claim(keys.begin(USER, KEY, BODY)), 202, "{}", JSON, {})
    # when it comes with another body
    other = fingerprint("POST", "/api/v1/execute", b'{"qasm": "other"}')
    with pytest.raises(ValidationFailed) as refused:
        keys.begin(USER, KEY, other)
    # then it is a 422 that says to use a new key
    assert refused.value.status == 422
    assert refused.value.error_code == "IDEMPOTENCY_KEY_REUSED"


def test_keys_are_scoped_per_user(keys: Idempotency) -> None:
    # given one user's key, answered
    mine = claim(keys.begin(USER, KEY, BODY))
    keys.finish(mine, 202, "{}", JSON, {})
    # when another user sends the same key with another request
    theirs = claim(keys.begin("user-2", KEY, fingerprint("POST", "/x", b"")))
    # then it is a first use, with a job id of its own
    assert theirs.owned and not theirs.resumed
    assert theirs.job_id != mine.job_id


def test_a_large_answer_is_kept_beside_the_row_and_replayed_whole(
    keys: Idempotency, storage: MemoryStorage
) -> None:
    # given an answer longer than a row holds
    body = '{"counts": "' + "0" * 40_000 + '"}'
    keys.finish(claim(keys.begin(USER, KEY, BODY)), 200, body, JSON, {})
    # when / then
    replay = keys.begin(USER, KEY, BODY)
    assert isinstance(replay, Stored) and replay.body == body
    assert len(storage.container(RESULTS_CONTAINER).blobs) == 1


# --- a key still pending -----------------------------------------------------------------------


def test_a_retry_while_the_first_still_runs_may_only_look_for_its_job(keys: Idempotency) -> None:
    # given a first request still running
    first = claim(keys.begin(USER, KEY, BODY))
    # when the client retries
    retry = claim(keys.begin(USER, KEY, BODY))
    # then the retry does not own the key, but knows the id the first's job has
    assert not retry.owned and retry.resumed
    assert retry.job_id == first.job_id


def test_an_answer_to_retry_unlocks_the_key_and_the_retry_makes_the_same_job(
    keys: Idempotency,
) -> None:
    # given a first request that answered 503 (nothing kept)
    first = claim(keys.begin(USER, KEY, BODY))
    keys.finish(first, 503, '{"error_code": "STORAGE_UNAVAILABLE"}', JSON, {})
    # when the client retries at once
    retry = claim(keys.begin(USER, KEY, BODY))
    # then it owns the key, resumed, under the same job id
    assert retry.owned and retry.resumed and retry.job_id == first.job_id


def test_a_quota_refusal_is_not_kept_so_a_retry_tomorrow_runs(keys: Idempotency) -> None:
    # given an answer that says when to retry
    first = claim(keys.begin(USER, KEY, BODY))
    keys.finish(first, 403, "{}", JSON, {"Retry-After": "3600"})
    # when / then the retry runs again, not a replay of the refusal
    assert claim(keys.begin(USER, KEY, BODY)).owned


def test_a_key_whose_request_died_is_taken_over_after_its_lock(
    keys: Idempotency, now: SimpleNamespace
) -> None:
    # given a first request that never finished
    first = claim(keys.begin(USER, KEY, BODY))
    # when the client retries within the lock, then after it
    now.at = START + timedelta(seconds=74)
    assert not claim(keys.begin(USER, KEY, BODY)).owned
    now.at = START + timedelta(seconds=76)
    retry = claim(keys.begin(USER, KEY, BODY))
    # then the late retry owns the key, with the first's job id
    assert retry.owned and retry.resumed and retry.job_id == first.job_id


def test_a_key_unlocked_during_an_outage_is_taken_over_at_once_by_this_instance(
    keys: Idempotency, storage: MemoryStorage
) -> None:
    # given a failed request whose unlock hit a storage outage
    first = claim(keys.begin(USER, KEY, BODY))
    storage.table(IDEMPOTENCY_TABLE).down()
    keys.finish(first, 503, "{}", JSON, {})  # never raises
    # when storage is back and the client retries, within the lock
    storage.table(IDEMPOTENCY_TABLE).down(False)
    retry = claim(keys.begin(USER, KEY, BODY))
    # then this instance remembers and takes the key over without waiting
    assert retry.owned and retry.job_id == first.job_id


def test_an_answer_is_not_kept_over_a_key_taken_over_since(
    keys: Idempotency, now: SimpleNamespace
) -> None:
    # given a slow first request whose key was taken over by a retry that answered
    slow = claim(keys.begin(USER, KEY, BODY))
    now.at = START + timedelta(seconds=80)
    retry = claim(keys.begin(USER, KEY, BODY))
    keys.finish(retry, 202, '{"by": "retry"}', JSON, {})
    # when the slow one finishes
    keys.finish(slow, 202, '{"by": "slow"}', JSON, {})
    # then the retry's answer is the one replayed
    replay = keys.begin(USER, KEY, BODY)
    assert isinstance(replay, Stored) and replay.body == '{"by": "retry"}'


# --- expiry ------------------------------------------------------------------------------------


def test_a_key_used_after_it_expired_is_a_new_use_with_a_new_job(
    keys: Idempotency, now: SimpleNamespace
) -> None:
    # given a key answered a day ago
    first = claim(keys.begin(USER, KEY, BODY))
    keys.finish(first, 202, "{}", JSON, {})
    # when it is used again after its 24 h, even for another request
    now.at = START + timedelta(hours=24, seconds=1)
    again = claim(keys.begin(USER, KEY, fingerprint("POST", "/api/v1/execute", b"{}")))
    # then it is a first use again, with a new job id
    assert again.owned and not again.resumed and again.job_id != first.job_id


# --- the key and the request's identity --------------------------------------------------------


@pytest.mark.parametrize("key", ["a", "~" * 255, "order:4711/retry#2", "Zz-_.!"])
def test_a_key_of_visible_ascii_up_to_255_characters_is_accepted(key: str) -> None:
    Idempotency.check_key(key)


@pytest.mark.parametrize("key", ["", "x" * 256, "two words", "tab\tkey", "clé", "key\n"])
def test_any_other_key_is_a_400(key: str) -> None:
    with pytest.raises(BadRequest) as refused:
        Idempotency.check_key(key)
    assert refused.value.error_code == "INVALID_IDEMPOTENCY_KEY"


def test_two_requests_are_the_same_when_method_path_and_body_bytes_are() -> None:
    same = fingerprint("POST", "/api/v1/execute", b"{}")
    assert fingerprint("post", "/api/v1/execute", b"{}") == same
    assert fingerprint("POST", "/api/v2/execute", b"{}") != same
    assert fingerprint("POST", "/api/v1/execute", b"{ }") != same
    assert fingerprint("PUT", "/api/v1/execute", b"{}") != same


@pytest.mark.parametrize(
    ("status", "headers", "kept"),
    [
        (202, {}, True),
        (422, {}, True),
        (500, {}, False),
        (503, {}, False),
        (429, {"Retry-After": "10"}, False),
        (403, {"Retry-After": "3600"}, False),
    ],
)
def test_only_final_answers_are_kept(status: int, headers: dict[str, str], kept: bool) -> None:
    assert Idempotency.keeps(status, headers) is kept


def test_a_key_in_use_is_a_409_that_says_to_retry_shortly() -> None:
    error = in_use()
    assert error.status == 409 and error.error_code == "IDEMPOTENCY_KEY_IN_USE"
    assert error.headers == {"Retry-After": "1"}
