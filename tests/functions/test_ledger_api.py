"""The ledger users notice, against Azurite through the registered functions: one charge per
job whatever the queue does, hash chains that show a changed or removed row, signed evidence
bundles that check themselves, budgets refused before a supplier is asked, who may see which
entries, FOCUS CSV, chargeback, and what an emulated run would have cost."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import azure.functions as func
import pytest

from shared import clock
from shared.api import accounts, jobs, ledger, suppliers
from shared.circuits import ParsedCircuit
from shared.config import Settings, get_settings
from shared.jobs.messages import Delivery, JobMessage
from shared.jobs.models import JobStatus
from shared.jobs.schemas import ExecuteRequest
from shared.ledger import focus
from shared.ledger.chain import verify_chain
from shared.ledger.evidence import verify_bundle
from shared.ledger.models import GENESIS
from shared.ledger.service import charge_entry
from shared.ledger.verify import main as verify_main
from shared.pricing.costs import Cost
from shared.services import Services
from shared.storage.clients import LEDGER_TABLE
from shared.suppliers.base import EmulatedRun, SubmitRequest, Target, TaskState
from tests.circuits import BELL

# A Braket device with a per-task and per-shot price: its list price is never under a cent.
# (SV1 bills simulated time with a 3 s minimum, 0.00375 USD for a Bell circuit, which the price
# book rounds to 0.00.)
PRICED_DEVICE = "garnet"


# -- helpers --------------------------------------------------------------------------------------


def a_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def period_now() -> dict[str, str]:
    """An hour either side of now: the period of everything a test just did."""
    now = clock.utcnow()
    return {
        "from": clock.iso(now - timedelta(hours=1)),
        "to": clock.iso(now + timedelta(hours=1)),
    }


def run_sync(
    http: Callable[..., Any], headers: dict[str, str], shots: int = 10, **body: Any
) -> str:
    """Run a Bell circuit in the request (charged at once); its job id."""
    ran = http(
        jobs.execute_sync,
        "POST",
        "/execute-sync",
        headers=headers,
        body={"qasm": BELL, "shots": shots, **body},
    )
    assert ran.status == 200, ran.body
    return str(ran.body["job_id"])


def usage(http: Callable[..., Any], headers: dict[str, str], query: str = "") -> Any:
    return http(ledger.ledger_usage, "GET", f"/api/v1/ledger/usage{query}", headers=headers)


def create_evidence(http: Callable[..., Any], headers: dict[str, str], **body: Any) -> Any:
    return http(
        ledger.ledger_create_evidence,
        "POST",
        "/api/v1/ledger/evidence",
        headers=headers,
        body={**period_now(), **body},
    )


def get_evidence(http: Callable[..., Any], headers: dict[str, str], evidence_id: str) -> Any:
    return http(
        ledger.ledger_get_evidence,
        "GET",
        f"/api/v1/ledger/evidence/{evidence_id}",
        headers=headers,
        route_params={"evidence_id": evidence_id},
    )


def call_raw(
    fn: Callable[[func.HttpRequest], func.HttpResponse],
    path: str,
    headers: dict[str, str],
    route_params: dict[str, str] | None = None,
) -> func.HttpResponse:
    """A GET's response as sent: its bytes and media type (the `http` fixture decodes JSON)."""
    return fn(
        func.HttpRequest(
            method="GET",
            url=f"http://127.0.0.1:7071{path}",
            headers=headers,
            params=dict(parse_qsl(urlsplit(path).query)),
            route_params=route_params or {},
            body=b"",
        )
    )


def download_evidence(headers: dict[str, str], evidence_id: str) -> bytes:
    """The bundle's bytes exactly as GET answers them."""
    resp = call_raw(
        ledger.ledger_get_evidence,
        f"/api/v1/ledger/evidence/{evidence_id}",
        headers,
        {"evidence_id": evidence_id},
    )
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    return bytes(resp.get_body())


def put_budget(http: Callable[..., Any], headers: dict[str, str], scope: str, limit: str) -> Any:
    return http(
        ledger.ledger_put_budget,
        "PUT",
        f"/api/v1/ledger/budgets/{scope}",
        headers=headers,
        route_params={"scope": scope},
        body={"period": "monthly", "limit": limit},
    )


def verify_file(path: Path, bundle: Any) -> int:
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return verify_main([str(path)])


# -- a cloud Braket answered by a recording stand-in ----------------------------------------------


@dataclass
class RecordingSupplier:
    """Braket in the cloud, as far as the gateway can tell: counts what reaches it."""

    supplier_id: str = "braket"
    submits: int = 0
    tasks: dict[str, str] = field(default_factory=dict)

    def configured(self) -> bool:
        return True

    def check_credentials(self) -> str | None:
        return None

    def submit(self, request: SubmitRequest) -> str:
        self.submits += 1
        return self.tasks.setdefault(request.client_token, f"arn:task/{uuid.uuid4().hex[:8]}")

    def poll(self, target: Target, task_id: str) -> TaskState:
        raise AssertionError("not polled in these tests")

    def cancel(self, target: Target, task_id: str) -> None:
        raise AssertionError("not cancelled in these tests")

    def emulate(self, target: Target, parsed: ParsedCircuit, shots: int) -> EmulatedRun:
        raise AssertionError("cloud mode never emulates")


@pytest.fixture
def cloud(
    services_env: Services, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[RecordingSupplier], Services]]:
    """Services whose Braket is configured (mode cloud) and answered by `RecordingSupplier`;
    the supplier endpoints use them too."""
    for name, value in {
        "QCOS_BRAKET_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00",
        "QCOS_BRAKET_SECRET_ACCESS_KEY": "not-a-secret",
        "QCOS_BRAKET_S3_BUCKET": "results-bucket",
    }.items():
        monkeypatch.setenv(name, value)

    def build(supplier: RecordingSupplier) -> Services:
        svc = Services.build(Settings.from_env(os.environ), adapters={"braket": supplier})
        monkeypatch.setattr(suppliers, "services", lambda: svc)
        return svc

    yield build


# -- 1. one charge per job ------------------------------------------------------------------------


def braket_execute(http: Callable[..., Any], headers: dict[str, str], body: dict[str, Any]) -> Any:
    return http(
        suppliers.supplier_execute,
        "POST",
        "/api/v1/braket/execute",
        headers=headers,
        route_params={"supplier": "braket"},
        body=body,
    )


def test_a_redelivered_job_message_is_charged_once(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a queued job whose first worker dies right after completing and charging it
    user = make_user("professional")
    accepted = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        headers=user.headers,
        body={"qasm": BELL, "shots": 10},
    )
    assert accepted.status == 202
    job_id = accepted.body["job_id"]
    repo = services_env.jobs._repo  # noqa: SLF001
    metering = services_env.jobs._metering  # noqa: SLF001
    real_charge = metering.charge
    crashed: list[bool] = []

    def dies_after_charging(job: Any) -> None:
        real_charge(job)
        if not crashed:
            crashed.append(True)
            raise RuntimeError("worker died after charging")

    monkeypatch.setattr(metering, "charge", dies_after_charging)
    message = JobMessage(user.user_id, job_id).encode()
    with pytest.raises(RuntimeError):
        services_env.jobs.run(message, Delivery("m-1", 1))
    assert [e.job_id for e in services_env.ledger.repo.chain(user.user_id)] == [job_id]

    # when the queue redelivers the same message (which finds it completed), and once more
    services_env.jobs.run(message, Delivery("m-1", 2))
    services_env.jobs.run(message, Delivery("m-1", 3))

    # then the job completed and the ledger holds one entry for it, the first of the chain
    job = repo.get(user.user_id, job_id)
    assert job is not None and job.status is JobStatus.COMPLETED
    chain = services_env.ledger.repo.chain(user.user_id)
    assert [(e.job_id, e.seq, e.prev_hash) for e in chain] == [(job_id, 1, GENESIS)]
    head = services_env.ledger.repo.head(user.user_id)
    assert head is not None and (head.seq, head.hash) == (1, chain[0].hash)


def test_two_workers_racing_on_one_job_charge_it_once(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a queued job and two workers holding different messages for it
    user = make_user("professional")
    accepted = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        headers=user.headers,
        body={"qasm": BELL, "shots": 10},
    )
    job_id = accepted.body["job_id"]
    message = JobMessage(user.user_id, job_id).encode()
    start = threading.Barrier(2)

    def worker(message_id: str) -> None:
        start.wait()
        services_env.jobs.run(message, Delivery(message_id, 1))

    # when both run at once
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(worker, ["m-a", "m-b"]))

    # then one entry, at seq 1 after the genesis hash
    chain = services_env.ledger.repo.chain(user.user_id)
    assert [(e.job_id, e.seq, e.prev_hash) for e in chain] == [(job_id, 1, GENESIS)]


def test_racing_charges_of_one_job_store_one_entry_and_never_fork_the_chain(
    make_user: Callable[..., Any], services_env: Services
) -> None:
    # given eight charges at once: four of one job, four of others, for one user
    user = make_user("enterprise")
    free = Cost(Decimal(0), Decimal(0), "USD", "local simulator: free")
    start = threading.Barrier(8)

    def charge(job_id: str) -> Any:
        start.wait()
        return services_env.ledger.charge(
            charge_entry(
                user_id=user.user_id,
                job_id=job_id,
                tenant="",
                project="",
                supplier=None,
                backend="qiskit_aer",
                mode="local",
                shots=10,
                cost=free,
            )
        )

    jobs_charged = ["same"] * 4 + ["other-1", "other-2", "other-3", "other-4"]
    # when
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(charge, jobs_charged))

    # then the repeated job was stored once, and the chain runs 1..5 unbroken
    assert sum(s is not None for s in stored[:4]) == 1
    assert all(s is not None for s in stored[4:])
    chain = services_env.ledger.repo.chain(user.user_id)
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert sorted(e.job_id for e in chain) == sorted(set(jobs_charged))
    head = services_env.ledger.repo.head(user.user_id)
    assert head is not None
    assert verify_chain(chain, head=(head.seq, head.hash)) == []


# -- 2. the hash chain ----------------------------------------------------------------------------


def test_a_users_entries_chain_and_a_changed_or_removed_row_is_reported(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given three completed jobs
    user = make_user("professional")
    ids = [run_sync(http, user.headers, shots=10 + n) for n in range(3)]
    repo = services_env.ledger.repo
    chain = repo.chain(user.user_id)
    head = repo.head(user.user_id)
    assert head is not None

    # then they chain 1..3, each after the one before, and the chain checks out
    assert [(e.job_id, e.seq) for e in chain] == list(zip(ids, [1, 2, 3], strict=True))
    assert chain[0].prev_hash == GENESIS
    assert [e.prev_hash for e in chain[1:]] == [e.hash for e in chain[:2]]
    assert (head.seq, head.hash) == (3, chain[2].hash)
    assert verify_chain(chain) == []
    assert verify_chain(chain, head=(head.seq, head.hash)) == []

    # when someone changes a stored row's shots in the table
    table = services_env.storage.table(LEDGER_TABLE)
    table.update_entity(
        {"PartitionKey": user.user_id, "RowKey": ids[1], "shots": 1_000_000}, mode="merge"
    )

    # then the chain reports that entry
    breaks = verify_chain(repo.chain(user.user_id))
    assert [(b.user_id, b.seq, b.problem) for b in breaks] == [
        (user.user_id, 2, "hash does not match its fields")
    ]

    # when the row is put back and the last row deleted instead
    table.update_entity({"PartitionKey": user.user_id, "RowKey": ids[1], "shots": 11}, mode="merge")
    assert verify_chain(repo.chain(user.user_id)) == []
    table.delete_entity(user.user_id, ids[2])

    # then the entries alone still link, but against the chain head the loss shows
    shortened = repo.chain(user.user_id)
    assert verify_chain(shortened) == []
    breaks = verify_chain(shortened, head=(head.seq, head.hash))
    assert [(b.seq, b.problem) for b in breaks] == [
        (3, "entry 3 is missing (the chain head is at seq 3)")
    ]


# -- 3. evidence bundles --------------------------------------------------------------------------


def test_an_evidence_bundle_downloads_as_signed_and_verifies_until_changed(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    admin_headers: dict[str, str],
    services_env: Services,
    tmp_path: Path,
) -> None:
    # given an enterprise user of a tenant with two completed jobs
    tenant = a_name("acme")
    user = make_user("enterprise", tenant)
    ids = [run_sync(http, user.headers, shots=10), run_sync(http, user.headers, shots=20)]

    # when they ask for evidence of the last hours
    made = create_evidence(http, user.headers)

    # then it is made, and signed
    assert made.status == 201, made.body
    evidence_id = made.body["evidence_id"]
    assert made.body["entries"] == 2 and made.body["signature"]
    assert made.headers["Location"] == made.body["download"]
    assert made.body["download"] == f"/api/v1/ledger/evidence/{evidence_id}"

    # when they download it
    data = download_evidence(user.headers, evidence_id)
    bundle = json.loads(data)

    # then it is the bundle announced: same bytes, same signature, their tenant's two entries
    assert hashlib.sha256(data).hexdigest() == made.body["sha256"]
    assert get_evidence(http, user.headers, evidence_id).body == bundle
    assert bundle["id"] == evidence_id and bundle["signature"] == made.body["signature"]
    assert bundle["tenant"] == tenant
    (section,) = bundle["chains"]
    assert [e["job_id"] for e in section["entries"]] == ids
    assert section["breaks"] == []
    assert bundle["totals"]["entries"] == 2 and bundle["totals"]["shots"] == 30

    # and the verifier says it is valid
    original = tmp_path / "bundle.json"
    original.write_bytes(data)
    assert verify_main([str(original)]) == 0

    # when one entry's field is changed in the downloaded file
    section["entries"][0]["shots"] = 11
    # then the verifier refuses it
    assert verify_file(tmp_path / "changed.json", bundle) == 1

    # when a stored row is tampered with and a new bundle made
    services_env.storage.table(LEDGER_TABLE).update_entity(
        {"PartitionKey": user.user_id, "RowKey": ids[0], "cost": "-5.00"}, mode="merge"
    )
    remade = create_evidence(http, user.headers)
    assert remade.status == 201
    fresh = json.loads(download_evidence(user.headers, remade.body["evidence_id"]))

    # then the new bundle records the break, and does not verify
    assert fresh["chains"][0]["breaks"] == [{"seq": 1, "problem": "hash does not match its fields"}]
    assert verify_file(tmp_path / "tampered.json", fresh) == 1


# -- 4. budgets -----------------------------------------------------------------------------------


def test_a_job_over_the_tenants_budget_is_refused_before_reaching_the_supplier(
    cloud: Callable[[RecordingSupplier], Services],
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    admin_headers: dict[str, str],
) -> None:
    # given Braket in the cloud, and a tenant with a budget of a cent this month
    supplier = RecordingSupplier()
    svc = cloud(supplier)
    tenant = a_name("acme")
    user = make_user("enterprise", tenant)
    put = put_budget(http, admin_headers, f"tenant:{tenant}", "0.01")
    assert put.status == 200, put.body
    assert (put.body["scope"], put.body["limit"], put.body["remaining"]) == (
        f"tenant:{tenant}",
        "0.01",
        "0.01",
    )
    who = svc.accounts.authenticate(user.api_key)
    quota_before = svc.quotas.use(user.user_id, who.tier).used
    body = {"qasm": BELL, "device": PRICED_DEVICE, "shots": 10}

    # when they submit a job that costs more
    refused = braket_execute(http, user.headers, body)

    # then it is refused, saying which budget and by how much
    assert refused.status == 403, refused.body
    assert refused.body["error_code"] == "BUDGET_EXCEEDED"
    assert refused.body["scope"] == f"tenant:{tenant}"
    assert Decimal(refused.body["estimated_cost"]) > Decimal("0.01")
    assert refused.body["remaining"] == "0.01"
    # and nothing happened: no task, no job, no quota spent
    assert supplier.submits == 0
    assert svc.jobs.usage(user.user_id).jobs_total == 0
    assert svc.quotas.use(user.user_id, who.tier).used == quota_before

    # when the admin raises the budget
    assert put_budget(http, admin_headers, f"tenant:{tenant}", "100.00").status == 200
    accepted = braket_execute(http, user.headers, body)

    # then the same job is accepted, and the worker submits it to the supplier
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["job_id"]
    assert svc.quotas.use(user.user_id, who.tier).used == quota_before + 1
    svc.jobs.run(JobMessage(user.user_id, job_id).encode(), Delivery("m-1", 1))
    assert supplier.submits == 1


def test_jobs_accepted_but_not_yet_charged_count_against_the_budget(
    cloud: Callable[[RecordingSupplier], Services],
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    admin_headers: dict[str, str],
) -> None:
    # given a tenant whose budget covers about one and a half jobs
    supplier = RecordingSupplier()
    cloud(supplier)
    tenant = a_name("acme")
    user = make_user("enterprise", tenant)
    body = {"qasm": BELL, "device": PRICED_DEVICE, "shots": 10}

    assert put_budget(http, admin_headers, f"tenant:{tenant}", "0.50").status == 200
    # when three jobs (each over half the budget) are submitted before any is charged
    answers = [braket_execute(http, user.headers, body) for _ in range(3)]
    # then the first is accepted, and the others see its estimate committed already
    assert [a.status for a in answers] == [202, 403, 403], [a.body for a in answers]
    refused = answers[1].body
    assert refused["error_code"] == "BUDGET_EXCEEDED"
    committed, estimate = Decimal(refused["committed"]), Decimal(refused["estimated_cost"])
    assert committed == estimate > Decimal("0.25")
    assert Decimal(refused["remaining"]) == Decimal("0.50") - committed
    assert supplier.submits == 0  # nothing reached the supplier at submit


# -- 5. who sees what -----------------------------------------------------------------------------


def test_only_enterprise_users_and_the_admin_see_the_ledger(
    make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a professional user
    user = make_user("professional")
    # when they ask for any part of the ledger
    answers = [
        usage(http, user.headers),
        http(ledger.ledger_chargeback, "GET", "/api/v1/ledger/chargeback", headers=user.headers),
        http(ledger.ledger_budgets, "GET", "/api/v1/ledger/budgets", headers=user.headers),
        create_evidence(http, user.headers),
    ]
    # then each is refused
    assert [(a.status, a.body["error_code"]) for a in answers] == [(403, "LEDGER_FORBIDDEN")] * 4


def test_tenants_see_their_own_entries_and_the_admin_sees_every_tenants(
    make_user: Callable[..., Any], http: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    # given two tenants, each with an enterprise user who ran a job
    tenant_a, tenant_b = a_name("a"), a_name("b")
    user_a = make_user("enterprise", tenant_a)
    user_b = make_user("enterprise", tenant_b)
    job_a, job_b = run_sync(http, user_a.headers), run_sync(http, user_b.headers)

    # when A's user reads the ledger
    seen = usage(http, user_a.headers)
    # then they see their tenant's entry only
    assert seen.status == 200
    assert [(e["job_id"], e["tenant"]) for e in seen.body["entries"]] == [(job_a, tenant_a)]

    # when they ask for B's entries
    other = usage(http, user_a.headers, f"?tenant={tenant_b}")
    # then they are refused
    assert other.status == 403 and other.body["error_code"] == "LEDGER_FORBIDDEN"

    # when the admin asks for each tenant
    by_admin = {
        tenant: [
            e["job_id"] for e in usage(http, admin_headers, f"?tenant={tenant}").body["entries"]
        ]
        for tenant in (tenant_a, tenant_b)
    }
    # then they see both
    assert by_admin == {tenant_a: [job_a], tenant_b: [job_b]}
    groups = http(
        ledger.ledger_chargeback, "GET", "/api/v1/ledger/chargeback", headers=admin_headers
    ).body["groups"]
    assert {tenant_a, tenant_b} <= {g["tenant"] for g in groups}

    # when A's evidence id is fetched by B's user
    made = create_evidence(http, user_a.headers)
    assert made.status == 201
    taken = get_evidence(http, user_b.headers, made.body["evidence_id"])
    # then it does not exist for them; the admin can fetch it
    assert taken.status == 404 and taken.body["error_code"] == "EVIDENCE_NOT_FOUND"
    assert get_evidence(http, admin_headers, made.body["evidence_id"]).status == 200


# -- 6. usage as CSV and pages --------------------------------------------------------------------


def test_usage_exports_focus_csv_and_pages_json(
    make_user: Callable[..., Any], http: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    # given a tenant with two charged jobs
    user = make_user("enterprise", a_name("csv"))
    ids = {run_sync(http, user.headers, shots=10), run_sync(http, user.headers, shots=20)}

    # when the usage is asked for as CSV
    csv_answer = usage(http, user.headers, "?format=csv")

    # then it is FOCUS CSV: the columns, then one row per entry
    assert csv_answer.status == 200
    assert "attachment" in csv_answer.headers["Content-Disposition"]
    assert (
        call_raw(ledger.ledger_usage, "/api/v1/ledger/usage?format=csv", user.headers).mimetype
        == "text/csv"
    )
    lines = csv_answer.body.splitlines()
    assert lines[0] == ",".join(focus.COLUMNS)
    assert len(lines) == 3
    job_column = focus.COLUMNS.index("x_JobId")
    assert {line.split(",")[job_column] for line in lines[1:]} == ids

    # when JSON is asked for a page at a time
    first = usage(http, user.headers, "?page_size=1")
    # then the first page has one entry and a cursor to the rest
    assert first.status == 200 and len(first.body["entries"]) == 1
    cursor = first.body["next_cursor"]
    assert cursor
    seen = [first.body["entries"][0]["job_id"]]
    while cursor:
        following = usage(http, user.headers, f"?page_size=1&cursor={cursor}")
        assert following.status == 200
        seen += [e["job_id"] for e in following.body["entries"]]
        cursor = following.body["next_cursor"]
    assert sorted(seen) == sorted(ids)

    # and a cursor the API did not give is refused
    bad = usage(http, user.headers, "?cursor=not-a-cursor")
    assert bad.status == 422


# -- 7. chargeback --------------------------------------------------------------------------------


def test_chargeback_sums_jobs_and_shots_per_tenant_and_project(
    make_user: Callable[..., Any], http: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    # given a tenant's jobs in two projects
    tenant = a_name("cb")
    user = make_user("enterprise", tenant)
    run_sync(http, user.headers, shots=10, tags={"project": "p1"})
    run_sync(http, user.headers, shots=20, tags={"project": "p1"})
    run_sync(http, user.headers, shots=30, tags={"project": "p2"})

    # when
    answer = http(
        ledger.ledger_chargeback, "GET", "/api/v1/ledger/chargeback", headers=user.headers
    )

    # then one group per project, with its jobs and shots
    assert answer.status == 200
    assert answer.body["groups"] == [
        {
            "tenant": tenant,
            "project": "p1",
            "currency": "USD",
            "jobs": 2,
            "shots": 30,
            "cost": "0.00",
            "list_cost": "0.00",
        },
        {
            "tenant": tenant,
            "project": "p2",
            "currency": "USD",
            "jobs": 1,
            "shots": 30,
            "cost": "0.00",
            "list_cost": "0.00",
        },
    ]


# -- 8. what an emulated run would have cost ------------------------------------------------------


def test_an_emulated_supplier_run_costs_nothing_and_shows_the_devices_list_price(
    make_user: Callable[..., Any], http: Callable[..., Any], services_env: Services
) -> None:
    # given a job on a Braket device, emulated (no Braket credentials), run by the worker
    user = make_user("professional")
    accepted = braket_execute(
        http, user.headers, {"qasm": BELL, "device": PRICED_DEVICE, "shots": 10}
    )
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["job_id"]
    services_env.jobs.run(JobMessage(user.user_id, job_id).encode(), Delivery("m-1", 1))

    # when the user reads their usage
    answer = http(accounts.user_usage, "GET", "/user/usage", headers=user.headers)

    # then nothing was charged, and the device's price is shown beside it
    assert answer.status == 200
    (row,) = answer.body["backends"]
    assert (row["backend"], row["currency"], row["jobs"], row["shots"]) == (
        "braket_iqm_garnet",  # the network's id for Braket's garnet
        "USD",
        1,
        10,
    )
    assert row["cost"] == "0.00"
    assert Decimal(row["list_cost"]) > 0
    (by_supplier,) = answer.body["suppliers"]
    assert (by_supplier["supplier"], by_supplier["cost"]) == ("braket", "0.00")
    entry = services_env.ledger.repo.get(user.user_id, job_id)
    assert entry is not None and entry.mode == "emulated"


# -- 9. charges entered after the answer ----------------------------------------------------------
# A run in the request is charged after its answer; a second `Services` is a second instance.


def another_instance_charging_late(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Services, threading.Event]:
    """A second instance whose ledger inserts wait until the returned event is set."""
    other = Services.build(get_settings())
    go = threading.Event()
    real_insert = other.ledger.repo.insert

    def held(entry: Any) -> Any:
        go.wait(10)
        return real_insert(entry)

    monkeypatch.setattr(other.ledger.repo, "insert", held)
    return other, go


def evidence_of(http: Callable[..., Any], headers: dict[str, str], since: str, until: str) -> Any:
    """The bundle of [since, until), made and downloaded through the API."""
    made = create_evidence(http, headers, **{"from": since, "to": until})
    assert made.status == 201, made.body
    return get_evidence(http, headers, made.body["evidence_id"]).body


def test_evidence_of_a_period_that_just_ended_verifies_while_another_instance_charges(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a run answered by another instance just before the period ends, its charge still
    # on its way
    user = make_user("enterprise", a_name("late"))
    principal = services_env.accounts.authenticate(user.api_key)
    other, go = another_instance_charging_late(monkeypatch)
    since = clock.iso(clock.utcnow() - timedelta(hours=1))
    assert other.jobs.execute_sync(principal, ExecuteRequest(qasm=BELL, shots=10)).status
    time.sleep(0.01)
    until = clock.now_iso()

    # when evidence of the period is made here and the charge lands right after the seal
    real_seal_pending = services_env.ledger.repo.seal_pending

    def seal_then_the_charge_lands(**filters: str) -> int:
        sealed = real_seal_pending(**filters)
        go.set()
        other.ledger.repo._caught_up()  # noqa: SLF001
        return sealed

    monkeypatch.setattr(services_env.ledger.repo, "seal_pending", seal_then_the_charge_lands)
    bundle = evidence_of(http, user.headers, since, until)

    # then the bundle holds sealed entries only, and verifies
    assert verify_bundle(bundle) == [], bundle["chains"]


def test_evidence_records_no_break_when_a_charge_lands_while_the_chain_is_read(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given one run charged and sealed in a closed period, and a later run answered by
    # another instance, its charge on its way
    user = make_user("enterprise", a_name("late"))
    principal = services_env.accounts.authenticate(user.api_key)
    since = clock.iso(clock.utcnow() - timedelta(hours=1))
    services_env.jobs.execute_sync(principal, ExecuteRequest(qasm=BELL, shots=10))
    services_env.ledger.seal()
    time.sleep(0.01)
    until = clock.now_iso()
    other, go = another_instance_charging_late(monkeypatch)
    other.jobs.execute_sync(principal, ExecuteRequest(qasm=BELL, shots=10))

    # when evidence is made and the charge lands between the chain's seal and its read
    repo = services_env.ledger.repo
    real_seal = repo.seal
    seals: list[str] = []

    def seal(user_id: str) -> int:
        sealed = real_seal(user_id)
        seals.append(user_id)
        if len(seals) == 1:
            go.set()
            other.ledger.repo._caught_up()  # noqa: SLF001
        return sealed

    monkeypatch.setattr(repo, "seal", seal)
    bundle = evidence_of(http, user.headers, since, until)

    # then the untouched ledger's bundle records no break, and verifies
    assert bundle["chains"][0]["breaks"] == []
    assert verify_bundle(bundle) == []


def test_a_usage_read_after_a_burst_of_runs_sees_every_run(
    make_user: Callable[..., Any], services_env: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given storage 40 ms away for ledger inserts, and 150 runs from 16 clients at once
    user = make_user("enterprise")
    principal = services_env.accounts.authenticate(user.api_key)
    repo = services_env.ledger.repo
    real_insert = repo.insert

    def far(entry: Any) -> Any:
        time.sleep(0.04)
        return real_insert(entry)

    monkeypatch.setattr(repo, "insert", far)
    runs = 150
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(
                lambda _: services_env.jobs.execute_sync(
                    principal, ExecuteRequest(qasm=BELL, shots=10)
                ),
                range(runs),
            )
        )
    assert all(a.status == "completed" for a in answers)

    # when the user reads their usage right after the last answer
    usage = services_env.ledger.user_usage(user.user_id, "2000-01-01T00:00:00.000Z")

    # then every run is in it: the inserts were not made one at a time (150 x 40 ms is past
    # the 5 s a read waits for them), and the backlog stayed bounded
    assert usage["totals"][0]["jobs"] == runs


# -- 10. dates in queries and bodies --------------------------------------------------------------


def chargeback(http: Callable[..., Any], headers: dict[str, str], **period: str) -> Any:
    return http(
        ledger.ledger_chargeback,
        "GET",
        f"/api/v1/ledger/chargeback?{urlencode(period)}",
        headers=headers,
    )


@pytest.mark.parametrize(
    ("period", "answered"),
    [
        # to: 10000-01-01T04:00Z once in UTC, past the last representable instant
        (
            {"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T23:00:00-05:00"},
            {"from": "9999-12-01T00:00:00.000Z", "to": "9999-12-31T23:59:59.999Z"},
        ),
        # from: 0000-12-31T10:00Z once in UTC, before the first
        (
            {"from": "0001-01-01T00:00:00+14:00", "to": "0001-02-01T00:00:00Z"},
            {"from": "0001-01-01T00:00:00.000Z", "to": "0001-02-01T00:00:00.000Z"},
        ),
        # no from: 30 days before a `to` in the year 1's first days
        (
            {"to": "0001-01-10"},
            {"from": "0001-01-01T00:00:00.000Z", "to": "0001-01-10T00:00:00.000Z"},
        ),
        # a `+` sent unencoded arrives as a space
        (
            {"from": "2026-01-01T00:00:00 01:00", "to": "2026-01-02T00:00:00+01:00"},
            {"from": "2025-12-31T23:00:00.000Z", "to": "2026-01-01T23:00:00.000Z"},
        ),
    ],
)
def test_times_at_the_edges_of_the_calendar_count_as_its_first_or_last_instant(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    admin_headers: dict[str, str],
    period: dict[str, str],
    answered: dict[str, str],
) -> None:
    # when a period reaches past the calendar Python (and the ledger's times) can write
    answer = chargeback(http, admin_headers, **period)
    # then it is the period up to the calendar's edge
    assert answer.status == 200, answer.body
    assert answer.body["period"] == answered
    # and so for the usage rows, CSV and evidence
    query = urlencode(period)
    assert usage(http, admin_headers, f"?{query}").status == 200
    assert usage(http, admin_headers, f"?{query}&format=csv").status == 200
    if "from" in period:
        made = create_evidence(http, admin_headers, **period)
        assert made.status == 201, made.body
        assert made.body["entries"] == 0


@pytest.mark.parametrize(
    ("period", "detail"),
    [
        ({"from": "0001-01-01T00:00:00+14:00"}, "query: a period spans at most 366 days"),
        ({"from": "9999-12-31T23:00:00-05:00"}, "query: `from` must be before `to`"),
        ({"to": "0001-01-01T00:00:00+14:00"}, "query: `from` must be before `to`"),
    ],
)
def test_a_period_cut_to_nothing_or_too_long_by_the_edges_is_refused_plainly(
    http: Callable[..., Any],
    admin_headers: dict[str, str],
    period: dict[str, str],
    detail: str,
) -> None:
    answer = chargeback(http, admin_headers, **period)
    assert answer.status == 422, answer.body
    assert set(answer.body) == {"detail", "error_code", "request_id"}
    assert (answer.body["error_code"], answer.body["detail"]) == ("VALIDATION_ERROR", detail)


DATE_FORMAT = (
    "Input should be an ISO 8601 date-time with a time zone, such as 2026-01-31T00:00:00Z, "
    "or a date, such as 2026-01-31 (datetime_format)"
)


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-01-31T25:00:00Z",
        "2026-01-31T00:00:00",  # no time zone
        "2026-01-31T00:00:00+25:00",
        "10000-01-01T00:00:00Z",
        " ",  # blank
        "2026-01-31T00:00:00Z' OR '1'='1",
    ],
)
@pytest.mark.parametrize("name", ["from", "to"])
def test_an_invalid_time_is_refused_naming_the_parameter_and_the_format(
    http: Callable[..., Any],
    admin_headers: dict[str, str],
    name: str,
    value: str,
) -> None:
    valid = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    # in a query
    answer = chargeback(http, admin_headers, **(valid | {name: value}))
    assert answer.status == 422, answer.body
    assert set(answer.body) == {"detail", "error_code", "request_id"}
    assert answer.body["error_code"] == "VALIDATION_ERROR"
    assert answer.body["detail"] == f"{name}: {DATE_FORMAT}"
    # and in a body
    made = create_evidence(http, admin_headers, **(valid | {name: value}))
    assert made.status == 422, made.body
    assert (made.body["error_code"], made.body["detail"]) == (
        "VALIDATION_ERROR",
        f"{name}: {DATE_FORMAT}",
    )
