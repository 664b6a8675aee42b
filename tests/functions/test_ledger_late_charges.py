"""Charges entered after the answer (a run in the request): what a ledger read, an evidence
bundle and a burst of runs see while such inserts are still on their way, on this instance or
another (a second `Services` is a second instance)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from shared import clock
from shared.api import ledger
from shared.config import get_settings
from shared.jobs.schemas import ExecuteRequest
from shared.ledger.evidence import verify_bundle
from shared.services import Services

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n"
)


def evidence(
    http: Callable[..., Any], headers: dict[str, str], since: str, until: str
) -> dict[str, Any]:
    made = http(
        ledger.ledger_create_evidence,
        "POST",
        "/api/v1/ledger/evidence",
        headers=headers,
        body={"from": since, "to": until},
    )
    assert made.status == 201, made.body
    got = http(
        ledger.ledger_get_evidence,
        "GET",
        f"/api/v1/ledger/evidence/{made.body['evidence_id']}",
        headers=headers,
        route_params={"evidence_id": made.body["evidence_id"]},
    )
    return dict(got.body)


def held_inserts(other: Services, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold `other`'s ledger inserts until the returned event is set."""
    go = threading.Event()
    real_insert = other.ledger.repo.insert

    def held(entry: Any) -> Any:
        go.wait(10)
        return real_insert(entry)

    monkeypatch.setattr(other.ledger.repo, "insert", held)
    return go


def test_evidence_of_a_period_that_just_ended_verifies_while_another_instance_charges(
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    services_env: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a run answered by another instance just before the period ends, its charge still
    # on its way
    user = make_user("enterprise", f"acme-{time.time_ns()}")
    principal = services_env.accounts.authenticate(user.api_key)
    other = Services.build(get_settings())
    go = held_inserts(other, monkeypatch)
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
    bundle = evidence(http, user.headers, since, until)

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
    user = make_user("enterprise", f"acme-{time.time_ns()}")
    principal = services_env.accounts.authenticate(user.api_key)
    since = clock.iso(clock.utcnow() - timedelta(hours=1))
    services_env.jobs.execute_sync(principal, ExecuteRequest(qasm=BELL, shots=10))
    services_env.ledger.seal()
    time.sleep(0.01)
    until = clock.now_iso()
    other = Services.build(get_settings())
    go = held_inserts(other, monkeypatch)
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
    bundle = evidence(http, user.headers, since, until)

    # then the untouched ledger's bundle records no break, and verifies
    assert bundle["chains"][0]["breaks"] == []
    assert verify_bundle(bundle) == []


def test_a_usage_read_after_a_burst_of_runs_sees_every_run_without_waiting_long(
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
