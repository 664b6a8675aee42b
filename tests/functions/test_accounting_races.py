"""Accounting that holds under reused ids, races and crashes, against Azurite through the
registered functions: a request refused for any reason leaves no ledger entry and moves no
counter, concurrent cloud submits never overshoot a budget, and quota reserved for a job that
was never accepted (a storage outage, a host killed mid-request) is given back by the recovery
timer."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import azure.functions.queue as fq
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.functions.timer import TimerRequest

from shared import clock
from shared.accounts.tiers import tier
from shared.api import jobs, ledger, suppliers, worker
from shared.config import get_settings
from shared.jobs.messages import Delivery, JobMessage
from shared.jobs.models import JobStatus
from shared.services import Services, services
from shared.storage.clients import QUOTAS_TABLE
from tests.circuits import BELL

# 0.30 USD a task + 0.00145 USD a shot: 55,000 shots are estimated at 80.05 USD.
PRICED_DEVICE = "garnet"
ABOUT_80_USD_OF_SHOTS = 55_000


# -- helpers --------------------------------------------------------------------------------------


def a_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def submit(http: Callable[..., Any], headers: dict[str, str], **body: Any) -> Any:
    return http(
        jobs.execute, "POST", "/api/v1/execute", headers=headers, body={"qasm": BELL, **body}
    )


def run_sync(http: Callable[..., Any], headers: dict[str, str], **body: Any) -> Any:
    return http(
        jobs.execute_sync, "POST", "/execute-sync", headers=headers, body={"qasm": BELL, **body}
    )


def braket_execute(http: Callable[..., Any], headers: dict[str, str], **body: Any) -> Any:
    return http(
        suppliers.supplier_execute,
        "POST",
        "/api/v1/braket/execute",
        headers=headers,
        route_params={"supplier": "braket"},
        body={"qasm": BELL, "device": PRICED_DEVICE, **body},
    )


def user_of_a_tenant_with_a_100_usd_daily_budget(
    make_user: Callable[..., Any], http: Callable[..., Any], admin_headers: dict[str, str]
) -> Any:
    """An enterprise user of a new tenant whose daily budget the admin set at 100 USD."""
    tenant = f"acme-{uuid.uuid4().hex[:10]}"
    user = make_user("enterprise", tenant)
    put = http(
        ledger.ledger_put_budget,
        "PUT",
        f"/api/v1/ledger/budgets/tenant:{tenant}",
        headers=admin_headers,
        route_params={"scope": f"tenant:{tenant}"},
        body={"period": "daily", "limit": "100.00"},
    )
    assert put.status == 200, put.body
    return user


def quota_used(svc: Services, user_id: str, tier_name: str) -> int:
    return svc.quotas.use(user_id, tier(tier_name)).used


def run_worker(svc: Services, user_id: str, job_id: str, dequeue_count: int = 1) -> None:
    svc.jobs.run(JobMessage(user_id, job_id).encode(), Delivery("m-1", dequeue_count))


def recovery_timer_runs_an_hour_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recovery timer, run when every request of the test is long over."""
    later = clock.utcnow() + timedelta(hours=1)
    with monkeypatch.context() as m:
        m.setattr(clock, "utcnow", lambda: later)
        worker.recover_jobs(TimerRequest(past_due=False))


@pytest.fixture
def cloud_braket(services_env: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The process's services with Braket configured (mode cloud). Nothing here reaches AWS:
    a cloud job is estimated and held against budgets at submit; no worker runs it."""
    for name, value in {
        "QCOS_BRAKET_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00",
        "QCOS_BRAKET_SECRET_ACCESS_KEY": "not-a-secret",
        "QCOS_BRAKET_S3_BUCKET": "results-bucket",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    services.cache_clear()
    yield services()


# -- 1. a job id is charged once, for the job that has it -----------------------------------------


def test_reusing_a_queued_jobs_id_in_execute_sync_is_refused_and_charges_and_counts_nothing(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a free user's queued job of 100 shots, named by the user
    user = make_user("free")
    job_id = a_job_id()
    queued = submit(http, user.headers, shots=100, job_id=job_id)
    assert queued.status == 202, queued.body
    used_before = quota_used(services_env, user.user_id, "free")
    assert used_before == 1

    # when the same id is run in the request with 10 shots
    reused = run_sync(http, user.headers, shots=10, job_id=job_id)

    # then it is refused, with no ledger entry for the id and no quota spent
    assert reused.status == 409, reused.body
    assert reused.body["error_code"] == "DUPLICATE_JOB_ID"
    assert services_env.ledger.repo.get(user.user_id, job_id) is None
    assert quota_used(services_env, user.user_id, "free") == used_before

    # when the worker runs the real job
    run_worker(services_env, user.user_id, job_id)

    # then it completed, and its one entry is its own: 100 shots
    job = services_env.jobs._repo.get(user.user_id, job_id)  # noqa: SLF001
    assert job is not None and job.status is JobStatus.COMPLETED
    entry = services_env.ledger.repo.get(user.user_id, job_id)
    assert entry is not None and entry.shots == 100
    assert [e.job_id for e in services_env.ledger.repo.chain(user.user_id)] == [job_id]
    assert quota_used(services_env, user.user_id, "free") == 1


def test_reusing_a_failed_jobs_id_in_execute_sync_leaves_no_ledger_entry(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a job that failed before it ran (its circuit vanished), so was never charged
    user = make_user("professional")
    job_id = a_job_id()
    assert submit(http, user.headers, shots=10, job_id=job_id).status == 202
    repo = services_env.jobs._repo  # noqa: SLF001
    job = repo.get(user.user_id, job_id)
    assert job is not None
    # (a small circuit is kept in the job's row, a large one in its blob: both go)
    repo.update_unchecked(user.user_id, job_id, {"circuit": ""})
    repo.delete_circuit_quietly(job.circuit_blob)
    worker.run_job(
        fq.QueueMessage(
            id="m-1", body=JobMessage(user.user_id, job_id).encode().encode(), dequeue_count=1
        )
    )
    failed = repo.get(user.user_id, job_id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert services_env.ledger.repo.get(user.user_id, job_id) is None

    # when its id is run in the request
    reused = run_sync(http, user.headers, shots=10, job_id=job_id)

    # then it is refused, and still no job of that id was charged
    assert reused.status == 409 and reused.body["error_code"] == "DUPLICATE_JOB_ID"
    assert services_env.ledger.repo.get(user.user_id, job_id) is None
    assert services_env.ledger.repo.chain(user.user_id) == []


def test_reusing_a_queued_cloud_jobs_id_in_execute_sync_leaves_no_free_local_charge_for_it(
    cloud_braket: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    admin_headers: dict[str, str],
) -> None:
    # given an accepted cloud job on a priced device, not yet run
    user = make_user("enterprise", f"acme-{uuid.uuid4().hex[:10]}")
    job_id = a_job_id()
    accepted = braket_execute(http, user.headers, shots=10, job_id=job_id)
    assert accepted.status == 202, accepted.body

    # when its id is run in the request, on the (free) local simulator
    reused = run_sync(http, user.headers, shots=10, job_id=job_id)

    # then it is refused, and no 0.00 entry stands where the cloud job's charge will go
    assert reused.status == 409 and reused.body["error_code"] == "DUPLICATE_JOB_ID"
    assert cloud_braket.ledger.repo.get(user.user_id, job_id) is None
    job = cloud_braket.jobs._repo.get(user.user_id, job_id)  # noqa: SLF001
    assert job is not None and (job.status, job.mode) == (JobStatus.QUEUED, "cloud")


# -- 2. budgets under concurrency -----------------------------------------------------------------


def test_twenty_concurrent_80_usd_cloud_submits_against_a_100_usd_daily_budget_accept_one(
    cloud_braket: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    admin_headers: dict[str, str],
) -> None:
    # given a tenant with a daily budget of 100 USD
    user = user_of_a_tenant_with_a_100_usd_daily_budget(make_user, http, admin_headers)
    start = threading.Barrier(20)

    def submit_at_once(_: int) -> Any:
        start.wait()
        return braket_execute(http, user.headers, shots=ABOUT_80_USD_OF_SHOTS)

    # when 20 cloud jobs of about 80 USD each are submitted at once
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit_at_once, range(20)))

    # then exactly one is accepted and 19 are refused by the budget
    assert Counter(a.status for a in answers) == {202: 1, 403: 19}, [a.body for a in answers]
    refused = [a.body for a in answers if a.status == 403]
    assert {r["error_code"] for r in refused} == {"BUDGET_EXCEEDED"}
    estimate = Decimal(refused[0]["estimated_cost"])
    assert Decimal(50) < estimate < Decimal(100)
    # and only the accepted job exists
    assert cloud_braket.jobs.usage(user.user_id).jobs_total == 1


# -- 3. quota given back when its job was never accepted ------------------------------------------


def test_quota_held_in_a_storage_outage_is_given_back_by_the_recovery_timer(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a free user with two accepted jobs
    user = make_user("free")
    for _ in range(2):
        assert submit(http, user.headers, shots=10).status == 202
    assert quota_used(services_env, user.user_id, "free") == 2

    # when storage goes down as the next job's row is written, before the reservation can be
    # given back (the quota's table is unreachable from then on)
    down = threading.Event()
    table = services_env.storage.table

    def quota_table_down_once_the_row_failed(name: str) -> Any:
        if name == QUOTAS_TABLE and down.is_set():
            raise ServiceRequestError("connection refused")
        return table(name)

    def row_insert_fails(job: Any) -> bool:
        down.set()
        raise ServiceRequestError("connection refused")

    with monkeypatch.context() as outage:
        outage.setattr(services_env.storage, "table", quota_table_down_once_the_row_failed)
        outage.setattr(services_env.jobs._repo, "insert", row_insert_fails)  # noqa: SLF001
        answer = submit(http, user.headers, shots=10)

    # then the submit answers 503, no job was made, and the counter is ahead of the jobs
    assert answer.status == 503, answer.body
    assert services_env.jobs.usage(user.user_id).jobs_total == 2
    assert quota_used(services_env, user.user_id, "free") == 3

    # when storage is back and the recovery timer runs once the reservation is old
    recovery_timer_runs_an_hour_later(monkeypatch)

    # then the counter is back to the user's accepted jobs, and stays there on the next run
    assert quota_used(services_env, user.user_id, "free") == 2
    recovery_timer_runs_an_hour_later(monkeypatch)
    assert quota_used(services_env, user.user_id, "free") == 2
    assert services_env.jobs.usage(user.user_id).jobs_total == 2


class HostKilled(BaseException):
    """The host process stopped mid-request: no handler of the app's runs after it."""


def test_quota_reserved_by_a_request_whose_host_was_killed_before_its_row_is_given_back(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a free user with one accepted job
    user = make_user("free")
    accepted = submit(http, user.headers, shots=10)
    assert accepted.status == 202

    # when the host is killed between a submit's reservation and its job row
    def killed(job: Any) -> bool:
        raise HostKilled

    with monkeypatch.context() as kill:
        kill.setattr(services_env.jobs._repo, "insert", killed)  # noqa: SLF001
        with pytest.raises(HostKilled):
            submit(http, user.headers, shots=10)
    assert quota_used(services_env, user.user_id, "free") == 2

    # when the recovery timer runs once that reservation is old
    recovery_timer_runs_an_hour_later(monkeypatch)

    # then the reservation with no job is given back; the accepted job keeps its own
    assert quota_used(services_env, user.user_id, "free") == 1
    assert services_env.jobs.usage(user.user_id).jobs_total == 1
    # and the day's quota is whole again: nine more jobs, then a refusal
    answers = [submit(http, user.headers, shots=10) for _ in range(10)]
    assert [a.status for a in answers] == [202] * 9 + [403]


def test_a_refused_submit_reusing_a_cloud_jobs_id_leaves_that_jobs_budget_hold_alone(
    cloud_braket: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    admin_headers: dict[str, str],
) -> None:
    # given a tenant's 100 USD daily budget holding about 80 USD for a queued cloud job X
    user = user_of_a_tenant_with_a_100_usd_daily_budget(make_user, http, admin_headers)
    job_id = a_job_id()
    first = braket_execute(http, user.headers, shots=ABOUT_80_USD_OF_SHOTS, job_id=job_id)
    assert first.status == 202, first.body
    # when a second submit reuses X's id (refused), and then X is cancelled
    again = braket_execute(http, user.headers, shots=10, job_id=job_id)
    assert again.status == 409 and again.body["error_code"] == "DUPLICATE_JOB_ID"
    cancelled = http(
        jobs.cancel_job,
        "DELETE",
        f"/api/v1/jobs/{job_id}",
        headers=user.headers,
        route_params={"job_id": job_id},
    )
    assert cancelled.status == 200, cancelled.body
    # then X's hold went back with its cancel: another job of about 80 USD fits
    assert braket_execute(http, user.headers, shots=ABOUT_80_USD_OF_SHOTS).status == 202


def test_a_network_jobs_hold_of_several_runs_is_given_back_whole_by_the_recovery_timer(
    make_user: Callable[..., Any], services_env: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a free user whose request reserved 3 runs (a network job's) and then died
    user = make_user("free")
    services_env.quotas.reserve(user.user_id, tier("free"), ref=uuid.uuid4().hex, runs=3)
    assert quota_used(services_env, user.user_id, "free") == 3
    # when the recovery timer runs after the hold is old
    recovery_timer_runs_an_hour_later(monkeypatch)
    # then all three runs are back
    assert quota_used(services_env, user.user_id, "free") == 0


# -- 5. a run in the request is charged after its answer, or by the recovery timer ----------------


def test_a_sync_run_whose_charge_failed_after_the_answer_is_charged_once_by_the_recovery_timer(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an execute-sync run answered while the ledger was unreachable (its charge is
    # entered after the answer, and that insert failed)
    user = make_user("enterprise")
    ledger_repo = services_env.ledger.repo

    def ledger_down(entry: Any) -> Any:
        raise ServiceRequestError("connection refused")

    with monkeypatch.context() as outage:
        outage.setattr(ledger_repo, "insert", ledger_down)
        answer = run_sync(http, user.headers, shots=100)
        assert answer.status == 200, answer.body
        ledger_repo._caught_up()  # noqa: SLF001 - the failed insert has run
    job_id = answer.body["job_id"]
    assert ledger_repo.get(user.user_id, job_id) is None
    assert services_env.jobs._repo.get(user.user_id, job_id).owed  # noqa: SLF001

    # when storage is back and the recovery timer runs (twice)
    recovery_timer_runs_an_hour_later(monkeypatch)
    recovery_timer_runs_an_hour_later(monkeypatch)

    # then the run is charged exactly once, for its shots, and no longer owed
    entries = list(ledger_repo.entries(user_id=user.user_id))
    assert [(e.job_id, e.shots) for e in entries] == [(job_id, 100)]
    assert not services_env.jobs._repo.get(user.user_id, job_id).owed  # noqa: SLF001
