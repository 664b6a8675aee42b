"""Storage calls per request are a budget (design.md, "Speed is a budget of round trips").

Counted at the storage clients' transport (`shared.storage.calls`), on a warm instance (the
key verified and the rate lease taken by an earlier request), for an enterprise key:
`POST /execute-sync` Bell <= 1 (its job row: the charge is entered after the answer, on
another thread), `POST /api/v1/execute` <= 3, `GET /api/v1/status/{id}` <= 2,
the worker's handling of one local job <= 4 (the host's receive and delete come on top). The
key's rate limit is leased in slices, so its counter (table `apikeys`) is written about once
per 50 enterprise requests, and a verified key is read again every `KEY_CACHE_SECONDS`: over
20 requests, table `apikeys` sees one lease write at most and one read per 5 s elapsed. A
change that adds a round trip to one of these paths fails here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.accounts.service import KEY_CACHE_SECONDS
from shared.api import jobs
from shared.jobs.messages import Delivery, JobMessage
from shared.services import Services
from shared.storage import calls
from shared.storage.clients import API_KEYS_TABLE
from tests.circuits import BELL

REQUESTS = 20


def per_request(
    send: Callable[[], Any], expect: int, requests: int = REQUESTS
) -> tuple[list[int], int]:
    """Send `requests` requests, each counted on its own: the calls of each, rate counter
    excluded, and the rate counter's calls over all of them."""
    counts, key_calls = [], 0
    started = time.monotonic()
    for _ in range(requests):
        with calls.counted() as tally:
            answer = send()
        assert answer.status == expect, answer.body
        counts.append(tally.excluding(API_KEYS_TABLE))
        key_calls += tally.by_resource()[API_KEYS_TABLE]
    # the key read again once per KEY_CACHE_SECONDS, and at most one lease of the rate limit
    rereads = math.ceil((time.monotonic() - started) / KEY_CACHE_SECONDS)
    return counts, key_calls - rereads


def submit(http: Callable[..., Any], headers: dict[str, str]) -> Any:
    body = {"qasm": BELL, "shots": 100}
    return http(jobs.execute, "POST", "/api/v1/execute", headers=headers, body=body)


def run_sync(http: Callable[..., Any], headers: dict[str, str]) -> Any:
    body = {"qasm": BELL, "shots": 1024}
    return http(jobs.execute_sync, "POST", "/execute-sync", headers=headers, body=body)


def status(http: Callable[..., Any], headers: dict[str, str], job_id: str) -> Any:
    return http(
        jobs.job_status,
        "GET",
        f"/api/v1/status/{job_id}",
        headers=headers,
        route_params={"job_id": job_id},
    )


def run_worker(services_env: Services, user_id: str, job_id: str) -> None:
    body = JobMessage(user_id, job_id).encode()
    services_env.jobs.run(body, Delivery(message_id=f"m-{job_id}", dequeue_count=1))


def test_execute_sync_bell_costs_one_storage_call_and_is_still_charged(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a warm instance and an enterprise key it has seen
    user = make_user("enterprise")
    assert run_sync(http, user.headers).status == 200
    # when
    counts, rate_calls = per_request(lambda: run_sync(http, user.headers), 200)
    # then the answer waited for the job row only
    assert max(counts) <= 1, counts
    assert rate_calls <= 1
    # and every run was charged once, after its answer (a read here waits for those in flight)
    entries = list(services_env.ledger.repo.entries(user_id=user.user_id))
    assert len(entries) == REQUESTS + 1


def test_execute_costs_at_most_three_storage_calls(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("enterprise")
    assert submit(http, user.headers).status == 202
    counts, rate_calls = per_request(lambda: submit(http, user.headers), 202)
    assert max(counts) <= 3, counts
    assert rate_calls <= 1


def test_status_of_a_completed_job_costs_at_most_two_storage_calls(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a completed queued job
    user = make_user("enterprise")
    job_id = submit(http, user.headers).body["job_id"]
    run_worker(services_env, user.user_id, job_id)
    # when
    counts, rate_calls = per_request(lambda: status(http, user.headers, job_id), 200)
    # then the counts come with it
    assert status(http, user.headers, job_id).body["result"]["counts"]
    assert max(counts) <= 2, counts
    assert rate_calls <= 1


def test_the_worker_runs_a_local_job_in_at_most_four_storage_calls(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given queued jobs (the first warms the worker up)
    user = make_user("enterprise")
    ids = [submit(http, user.headers).body["job_id"] for _ in range(6)]
    run_worker(services_env, user.user_id, ids[0])
    # when each is handled as its message would be
    counts = []
    for job_id in ids[1:]:
        with calls.counted() as tally:
            run_worker(services_env, user.user_id, job_id)
        counts.append(tally.total)
    # then each completed, charged once, in at most 4 calls
    assert max(counts) <= 4, counts
    for job_id in ids[1:]:
        assert status(http, user.headers, job_id).body["status"] == "completed"


def test_a_limited_tier_adds_one_call_for_its_quota(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a professional key (1000 jobs a day: its counter is moved by each submit)
    user = make_user("professional")
    assert submit(http, user.headers).status == 202
    # when / then: the quota's conditional write, with the etag of the last one, on top
    counts, _ = per_request(lambda: submit(http, user.headers), 202, requests=10)
    assert max(counts) <= 4, counts


def test_a_burst_of_one_user_from_sixteen_clients_adds_few_retries(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given one enterprise user, warm, and what one job costs alone (submit + worker)
    user = make_user("enterprise")
    job_id = submit(http, user.headers).body["job_id"]
    run_worker(services_env, user.user_id, job_id)
    with calls.counted() as alone:
        job_id = submit(http, user.headers).body["job_id"]
        run_worker(services_env, user.user_id, job_id)
    # when 16 clients each submit and run 5 jobs at once
    tallies: list[calls.Tally] = []
    failures: list[str] = []

    def client() -> None:
        with calls.counted() as tally:
            for _ in range(5):
                answer = submit(http, user.headers)
                if answer.status != 202:
                    failures.append(f"{answer.status}: {answer.body}")
                    continue
                run_worker(services_env, user.user_id, answer.body["job_id"])
        tallies.append(tally)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then every job was accepted and the burst cost under 10% more calls than 80 jobs alone
    assert not failures, failures[:3]
    total = sum(t.total for t in tallies)
    assert total < 1.10 * 80 * alone.total, (total, alone.total)
