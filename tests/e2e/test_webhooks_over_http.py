"""End to end: signed webhooks through funchost on Azurite, to a real HTTP receiver.

A receiver (`http.server` on a thread, plain http on 127.0.0.1) is subscribed with
`POST /api/v1/webhooks`; a Bell job submitted over HTTP runs under funchost, whose
`webhook-deliveries` queue function POSTs each event the subscription asked for. The receiver
checks `X-QCOS-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>` itself, as a
user's server would, with the secret the creation answered (once).

The host runs with `QCOS_WEBHOOKS_ALLOW_LOOPBACK=true` (what `local.settings.json.example` sets:
a loopback receiver is accepted, over plain http too) and `QCOS_WEBHOOKS_RETRY_SECONDS=1,1,1`
(four attempts, a second apart, instead of 5 s to 30 min).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from softqcos_sdk.api.webhooks import WebhooksAPI

from funchost.testing import Azurite, FuncHost
from tests.circuits import BELL
from tests.e2e.gateway import key_headers, new_key, submit
from tests.receivers import Receiver, receiving

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "qcos_admin_" + "w" * 40
EVERY_STATUS = ["job.queued", "job.processing", "job.completed"]
WAIT_SECONDS = 60.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving("/qcos") as running:
        yield running


@pytest.fixture(scope="module")
def host(azurite: Azurite) -> Iterator[FuncHost]:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "QCOS_ADMIN_API_KEY": ADMIN_KEY,
        "QCOS_WEBHOOKS_ALLOW_LOOPBACK": "true",
        "QCOS_WEBHOOKS_RETRY_SECONDS": "1,1,1",
    }
    with FuncHost(ROOT, env=env) as running:
        yield running


def subscribe(host: FuncHost, headers: dict[str, str], url: str, events: list[str]) -> Any:
    answer = requests.post(
        f"{host.url}/api/v1/webhooks",
        json={"url": url, "events": events},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def signature_valid(secret: str, body: str, header: str, now: float) -> bool:
    """What a receiver checks, written from the documented scheme alone: `t=<unix>,v1=<hex
    HMAC-SHA256(secret, f"{t}.{body}")>`, `t` within five minutes of now."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    t = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - t) <= 300


def deliveries(host: FuncHost, headers: dict[str, str], webhook_id: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{host.url}/api/v1/webhooks/{webhook_id}/deliveries", headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["webhook_id"] == webhook_id and body["count"] == len(body["deliveries"])
    return list(body["deliveries"])


def log_until(
    host: FuncHost,
    headers: dict[str, str],
    webhook_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done(entries := deliveries(host, headers, webhook_id)):
        assert time.monotonic() < deadline, entries
        time.sleep(0.2)
    return entries


def test_a_receiver_gets_the_events_it_asked_for_signed_with_the_secret_shown_once(
    host: FuncHost, receiver: Receiver
) -> None:
    # given a receiver subscribed to a job's every step
    key = new_key(host.url, ADMIN_KEY)
    headers = key_headers(key)
    created = subscribe(host, headers, receiver.url, EVERY_STATUS)
    secret = created["secret"]
    assert created["url"] == receiver.url and created["events"] == EVERY_STATUS
    listed = requests.get(f"{host.url}/api/v1/webhooks", headers=headers, timeout=30).json()
    assert [w["id"] for w in listed["webhooks"]] == [created["id"]]
    shown_later = listed["webhooks"][0]["secret"]
    assert secret.startswith("whsec_") and shown_later != secret and secret not in shown_later

    # when a Bell job runs
    job_id = submit(host.url, key, BELL, shots=100)

    # then the receiver gets queued, processing and completed once each, for that job
    got = receiver.wait_for(3)
    time.sleep(1.0)  # and nothing more arrives
    got = receiver.got()
    events = [json.loads(r.body) for r in got]
    assert sorted(e["type"] for e in events) == sorted(EVERY_STATUS), events
    by_type = {e["type"]: e for e in events}
    assert [by_type[t]["created_at"] for t in EVERY_STATUS] == sorted(
        by_type[t]["created_at"] for t in EVERY_STATUS
    )
    for event in events:
        assert event["data"]["job_id"] == job_id
        assert event["data"]["kind"] == "job"
        assert event["type"] == f"job.{event['data']['status']}"
    assert len({e["id"] for e in events}) == 3
    # each POSTed to the subscribed path, signed with the secret the creation showed
    now = time.time()
    for request in got:
        assert request.path == "/qcos"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-QCOS-Event"] == json.loads(request.body)["type"]
        assert request.headers["X-QCOS-Webhook-Id"] == created["id"]
        signature = request.headers["X-QCOS-Signature"]
        assert signature_valid(secret, request.body, signature, now)
        assert WebhooksAPI.verify_signature(secret, request.body, signature)  # the vendor's check
        assert not signature_valid("whsec_" + "x" * 40, request.body, signature, now)
        assert not signature_valid(secret, request.body.replace(job_id, "0" * 36), signature, now)
    # and the log has one delivered attempt per event, with the receiver's 200
    entries = log_until(host, headers, created["id"], lambda e: len(e) == 3)
    assert sorted(e["event"] for e in entries) == sorted(EVERY_STATUS)
    assert {(e["attempt"], e["outcome"], e["status_code"]) for e in entries} == {
        (1, "delivered", 200)
    }


def test_a_receiver_answering_500_twice_gets_a_third_attempt_and_the_log_shows_all_three(
    host: FuncHost, receiver: Receiver
) -> None:
    # given a receiver that answers 500 twice, then 200, subscribed to completions only
    receiver.statuses = [500, 500]
    key = new_key(host.url, ADMIN_KEY)
    headers = key_headers(key)
    created = subscribe(host, headers, receiver.url, ["job.completed"])

    # when a Bell job completes
    job_id = submit(host.url, key, BELL, shots=100)

    # then the same delivery comes three times, a retry delay apart, each validly signed
    got = receiver.wait_for(3)
    time.sleep(2.0)  # a fourth would come a second after the third
    got = receiver.got()
    assert len(got) == 3, [r.body for r in got]
    assert len({r.headers["X-QCOS-Delivery"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    assert json.loads(got[0].body)["type"] == "job.completed"
    assert json.loads(got[0].body)["data"]["job_id"] == job_id
    assert all(b.at - a.at >= 0.9 for a, b in zip(got, got[1:], strict=False))
    for request in got:
        assert signature_valid(
            created["secret"], request.body, request.headers["X-QCOS-Signature"], time.time()
        )
    # and the delivery log shows the three attempts with the receiver's statuses, newest first
    entries = log_until(
        host, headers, created["id"], lambda e: any(x["outcome"] == "delivered" for x in e)
    )
    assert [(e["attempt"], e["outcome"], e["status_code"]) for e in entries] == [
        (3, "delivered", 200),
        (2, "retrying", 500),
        (1, "retrying", 500),
    ]
    assert [e["error"] for e in entries] == [None, "receiver answered 500", "receiver answered 500"]
    assert {e["event"] for e in entries} == {"job.completed"}
    assert len({e["delivery_id"] for e in entries}) == 1
    assert all(e["delivery_id"] == got[0].headers["X-QCOS-Delivery"] for e in entries)
