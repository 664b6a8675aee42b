"""Limits users feel, against Azurite through the registered functions: rate limits per key,
daily quotas reserved at submit, `Idempotency-Key`, and the admin's changes to keys and tiers
taking effect on the next request. Concurrency runs in threads, as the host's workers do."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions.queue as fq
import pytest
from azure.core.exceptions import ServiceRequestError

from shared.accounts import ratelimit
from shared.api import accounts, jobs, worker
from shared.jobs.messages import JobMessage
from shared.services import Services
from tests.circuits import BELL


def away_from_a_minute_boundary() -> None:
    """Rate windows are whole minutes: start a burst with at least 10 s of its minute left."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.1)


def me(http: Callable[..., Any], headers: dict[str, str]) -> Any:
    return http(accounts.me, "GET", "/user/me", headers=headers)


def submit(http: Callable[..., Any], headers: dict[str, str], **body: Any) -> Any:
    return http(
        jobs.execute, "POST", "/api/v1/execute", headers=headers, body={"qasm": BELL, **body}
    )


def test_a_burst_over_the_free_tiers_rate_gets_exactly_the_limit_through(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a free key (60 requests a minute) and 80 requests at once
    user = make_user("free")
    away_from_a_minute_boundary()
    # when
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: me(http, user.headers), range(80)))
    # then exactly 60 are answered and 20 refused with the standard body and Retry-After
    statuses = Counter(a.status for a in answers)
    assert statuses == {200: 60, 429: 20}
    refused = next(a for a in answers if a.status == 429)
    assert refused.body["error_code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # and the remaining counts handed out are each of 59..0 once
    remaining = sorted(int(a.headers["X-RateLimit-Remaining"]) for a in answers if a.status == 200)
    assert remaining == list(range(60))


def test_every_rate_limit_header_comes_from_one_decision(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given
    user = make_user("professional")
    away_from_a_minute_boundary()
    # when
    answer = me(http, user.headers)
    # then the legacy and the IETF headers say the same thing
    h = answer.headers
    limit, remaining, reset = (
        h["X-RateLimit-Limit"],
        h["X-RateLimit-Remaining"],
        int(h["X-RateLimit-Reset"]),
    )
    assert (limit, remaining) == ("300", "299")
    assert h["RateLimit-Policy"] == f'"{ratelimit.POLICY}";q=300;w=60'
    seconds = int(h["RateLimit"].rpartition("t=")[2])
    assert h["RateLimit"] == f'"{ratelimit.POLICY}";r=299;t={seconds}'
    assert reset % 60 == 0 and 0 < reset - time.time() <= 60
    assert abs((reset - time.time()) - seconds) <= 1.5
    # and an error answer to the same key carries them too
    missing = http(
        jobs.job_status,
        "GET",
        "/api/v1/status/nope",
        headers=user.headers,
        route_params={"job_id": "nope"},
    )
    assert missing.status == 404 and missing.headers["X-RateLimit-Remaining"] == "298"


def test_a_failing_rate_limit_store_lets_requests_through(
    make_user: Callable[..., Any], http: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a key whose counter cannot be written
    user = make_user("free")

    def down(*args: Any, **kwargs: Any) -> None:
        raise ServiceRequestError("connection refused")

    monkeypatch.setattr(ratelimit, "write_if_unchanged", down)
    # when / then the request is answered (and logged), with the whole limit left
    answer = me(http, user.headers)
    assert answer.status == 200
    assert answer.headers["X-RateLimit-Remaining"] == "60"


def test_fifty_concurrent_submits_against_a_quota_of_ten_accept_exactly_ten(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a free user (10 jobs a day)
    user = make_user("free")
    # when 50 submits arrive at once
    with ThreadPoolExecutor(25) as pool:
        answers = list(pool.map(lambda _: submit(http, user.headers, shots=10), range(50)))
    # then 10 are accepted and 40 refused until midnight UTC
    assert Counter(a.status for a in answers) == {202: 10, 403: 40}
    refused = next(a for a in answers if a.status == 403)
    assert refused.body["error_code"] == "QUOTA_EXCEEDED"
    assert 0 < int(refused.headers["Retry-After"]) <= 86_400
    # and exactly the accepted jobs exist
    assert services_env.jobs.usage(user.user_id).jobs_total == 10


def test_cancelling_a_queued_job_gives_its_quota_back(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a free user who used the whole day's quota
    user = make_user("free")
    accepted = [submit(http, user.headers, shots=10) for _ in range(10)]
    assert all(a.status == 202 for a in accepted)
    assert submit(http, user.headers).status == 403
    # when one queued job is cancelled (twice: the refund happens once)
    job_id = accepted[0].body["job_id"]
    for _ in range(2):
        cancelled = http(
            jobs.cancel_job,
            "DELETE",
            f"/api/v1/jobs/{job_id}",
            headers=user.headers,
            route_params={"job_id": job_id},
        )
        assert cancelled.status == 200
    # then exactly one more job can be submitted
    assert submit(http, user.headers).status == 202
    assert submit(http, user.headers).status == 403


def test_a_job_that_fails_before_running_gives_its_quota_back(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a free user with one job left whose circuit vanished before it ran
    user = make_user("free")
    ids = [submit(http, user.headers, shots=10).body["job_id"] for _ in range(10)]
    job = services_env.jobs._repo.get(user.user_id, ids[0])
    assert job is not None
    # (a small circuit is kept in the job's row, a large one in its blob: both go)
    services_env.jobs._repo.update_unchecked(user.user_id, ids[0], {"circuit": ""})
    services_env.jobs._repo.delete_circuit_quietly(job.circuit_blob)
    # when the worker takes it (the redelivery too)
    for count in (1, 2):
        worker.run_job(
            fq.QueueMessage(
                id="m-1",
                body=JobMessage(user.user_id, ids[0]).encode().encode(),
                dequeue_count=count,
            )
        )
    # then it failed, and one job of the quota is back
    usage = http(accounts.user_usage, "GET", "/user/usage", headers=user.headers)
    assert usage.body["quota"]["used"] == 9
    assert submit(http, user.headers).status == 202


def test_the_same_idempotency_key_and_body_replays_the_first_answer(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given
    user = make_user("free")
    headers = {**user.headers, "Idempotency-Key": f"order-{uuid.uuid4()}"}
    # when the same request is sent three times
    answers = [submit(http, headers, shots=10) for _ in range(3)]
    # then one job was made, and the repeats say they are replays of it
    assert {a.status for a in answers} == {202}
    assert len({a.body["job_id"] for a in answers}) == 1
    assert "Idempotent-Replayed" not in answers[0].headers
    assert [a.headers.get("Idempotent-Replayed") for a in answers[1:]] == ["true", "true"]
    assert answers[1].body == answers[0].body
    assert services_env.jobs.usage(user.user_id).jobs_total == 1
    assert (
        services_env.quotas.use(
            user.user_id, services_env.accounts.authenticate(user.api_key).tier
        ).used
        == 1
    )


def test_the_same_idempotency_key_with_another_body_is_422(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("free")
    headers = {**user.headers, "Idempotency-Key": "k-1"}
    assert submit(http, headers, shots=10).status == 202
    # when
    other = submit(http, headers, shots=11)
    # then
    assert other.status == 422 and other.body["error_code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_key_still_being_handled_answers_409(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given the first request with this key holds it (it is still running)
    user = make_user("free")
    key = "still-running"
    from shared import idempotency

    body = b'{"qasm": "x"}'
    claim = services_env.idempotency.begin(
        user.user_id, key, idempotency.fingerprint("POST", "/api/v1/execute", body)
    )
    assert isinstance(claim, idempotency.Claim)
    # when the retry arrives
    answer = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        raw=body,
        headers={**user.headers, "Idempotency-Key": key},
    )
    # then
    assert answer.status == 409 and answer.body["error_code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert answer.headers["Retry-After"] == "1"


def test_idempotency_keys_are_scoped_per_user_and_failures_are_not_kept(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given two users sending the same key
    first, second = make_user("free"), make_user("free")
    key = {"Idempotency-Key": "shared-key"}
    a = submit(http, {**first.headers, **key}, shots=10)
    b = submit(http, {**second.headers, **key}, shots=10)
    # then each made their own job
    assert a.status == b.status == 202 and a.body["job_id"] != b.body["job_id"]
    assert "Idempotent-Replayed" not in b.headers
    # and an answer that says "retry later" is not replayed: after the quota's refusal the
    # same key runs again
    for _ in range(9):
        assert submit(http, second.headers, shots=10).status == 202
    retry_key = {**second.headers, "Idempotency-Key": "after-quota"}
    assert submit(http, retry_key, shots=10).status == 403
    assert submit(http, retry_key, shots=10).headers.get("Idempotent-Replayed") is None


def test_a_revoked_key_is_refused_at_once_and_the_users_other_key_works(
    make_user: Callable[..., Any], http: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    # given a user with a second key
    user = make_user("free")
    issued = http(
        accounts.issue_key,
        "POST",
        f"/admin/users/{user.user_id}/keys",
        headers=admin_headers,
        route_params={"user_id": user.user_id},
    )
    assert issued.status == 201
    second = {"X-API-Key": issued.body["api_key"]}
    assert me(http, user.headers).status == 200
    first_id = user.api_key.split("_")[1]
    # when the first key is revoked
    revoked = http(
        accounts.revoke_key,
        "DELETE",
        f"/admin/users/{user.user_id}/keys/{first_id}",
        headers=admin_headers,
        route_params={"user_id": user.user_id, "key_id": first_id},
    )
    assert revoked.status == 200 and revoked.body["revoked"] is True
    # then the very next request with it is 401, and the second key still works
    assert me(http, user.headers).status == 401
    assert me(http, second).status == 200
    listed = http(
        accounts.list_keys,
        "GET",
        f"/admin/users/{user.user_id}/keys",
        headers=admin_headers,
        route_params={"user_id": user.user_id},
    )
    assert {(k["key_id"], k["revoked"]) for k in listed.body["keys"]} == {
        (first_id, True),
        (issued.body["key_id"], False),
    }


def test_a_tier_change_takes_effect_on_the_next_request(
    make_user: Callable[..., Any], http: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    # given a free user (1024 shots at most)
    user = make_user("free")
    assert submit(http, user.headers, shots=5000).status == 400
    # when the admin makes them professional, with a tenant
    changed = http(
        accounts.update_user,
        "PATCH",
        f"/admin/users/{user.user_id}",
        headers=admin_headers,
        route_params={"user_id": user.user_id},
        body={"tier": "professional", "tenant": "acme"},
    )
    assert changed.status == 200
    assert (changed.body["tier"], changed.body["tenant"]) == ("professional", "acme")
    # then their next requests have the professional limits
    assert me(http, user.headers).headers["X-RateLimit-Limit"] == "300"
    assert submit(http, user.headers, shots=5000).status == 202


def test_admin_lists_users_a_page_at_a_time_and_user_keys_cannot(
    make_user: Callable[..., Any], http: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    user = make_user("free")
    make_user("free")
    # when
    first = http(accounts.list_users, "GET", "/admin/users?page_size=1", headers=admin_headers)
    # then
    assert first.status == 200 and len(first.body["users"]) == 1
    assert first.body["next_cursor"]
    assert http(accounts.list_users, "GET", "/admin/users", headers=user.headers).status == 403


def test_quota_and_usage_are_reported_to_the_user(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a job run in the request (charged at once)
    user = make_user("free")
    ran = http(
        jobs.execute_sync,
        "POST",
        "/execute-sync",
        headers=user.headers,
        body={"qasm": BELL, "shots": 100, "tags": {"project": "p1"}},
    )
    assert ran.status == 200
    # when
    usage = http(accounts.user_usage, "GET", "/user/usage", headers=user.headers)
    # then
    assert usage.status == 200
    body = usage.body
    assert body["quota"]["daily_limit"] == 10 and body["quota"]["used"] == 1
    assert body["quota"]["remaining"] == 9
    assert body["backends"] == [
        {
            "backend": "qiskit_aer",
            "currency": "USD",
            "jobs": 1,
            "shots": 100,
            "cost": "0.00",
            "list_cost": "0.00",
        }
    ]
