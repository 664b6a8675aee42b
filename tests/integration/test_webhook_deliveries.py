"""Webhook deliveries end to end on Azurite: a job's events reach a real local HTTP receiver
through the dispatcher, the `webhook-deliveries` queue and its queue function, signed; a
failing receiver is tried again and every attempt is in the log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest
from softqcos_sdk.api.webhooks import WebhooksAPI

from shared.api import jobs, webhooks
from shared.jobs.messages import Delivery, JobMessage
from shared.services import Services, services
from shared.storage.clients import WEBHOOK_DELIVERIES_QUEUE
from shared.webhooks import signing
from tests.circuits import BELL
from tests.conftest import reset_caches
from tests.receivers import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving("/hook") as running:
        yield running


@pytest.fixture
def svc(services_env: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("QCOS_WEBHOOKS_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("QCOS_WEBHOOKS_RETRY_SECONDS", "0,0,0")  # four attempts, no waiting
    reset_caches()
    built = services()
    built.storage.queue(WEBHOOK_DELIVERIES_QUEUE).clear_messages()
    yield built
    built.webhooks.close()


def subscribe(
    http: Callable[..., Any], headers: dict[str, str], url: str, events: list[str]
) -> Any:
    body = {"url": url, "events": events}
    answer = http(webhooks.create_webhook, "POST", "/api/v1/webhooks", headers=headers, body=body)
    assert answer.status == 201, answer.body
    return answer.body


def run_a_job(
    svc: Services, http: Callable[..., Any], headers: dict[str, str], user_id: str
) -> str:
    body = {"qasm": BELL, "shots": 100}
    answer = http(jobs.execute, "POST", "/api/v1/execute", headers=headers, body=body)
    assert answer.status == 202, answer.body
    job_id = str(answer.body["job_id"])
    svc.jobs.run(JobMessage(user_id, job_id).encode(), Delivery(f"m-{job_id}", 1))
    return job_id


def drain(svc: Services, seconds: float = 10.0) -> int:
    """Run the queue function on every delivery message, as the host would, until the queue
    stays empty; the number of messages run."""
    assert svc.webhooks.dispatcher.wait_idle()
    queue = svc.storage.queue(WEBHOOK_DELIVERIES_QUEUE)
    ran, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = list(queue.receive_messages(messages_per_page=16, visibility_timeout=30))
        if not batch:
            if queue.get_queue_properties().approximate_message_count == 0:
                return ran
            time.sleep(0.05)
            continue
        for message in batch:
            msg = func.QueueMessage(id=message.id, body=message.content.encode())
            webhooks.deliver_webhook(msg)
            queue.delete_message(message)
            ran += 1
    raise AssertionError("the delivery queue did not drain")


def log(http: Callable[..., Any], headers: dict[str, str], webhook_id: str) -> list[dict[str, Any]]:
    answer = http(
        webhooks.webhook_deliveries,
        "GET",
        f"/api/v1/webhooks/{webhook_id}/deliveries",
        headers=headers,
        route_params={"webhook_id": webhook_id},
    )
    assert answer.status == 200, answer.body
    return list(answer.body["deliveries"])


def test_a_receiver_gets_each_event_of_a_job_once_signed(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any], receiver: Receiver
) -> None:
    # given a subscription to every job event, and another user's job beside ours
    user, other = make_user(), make_user()
    created = subscribe(
        http,
        user.headers,
        receiver.url,
        ["job.queued", "job.processing", "job.completed", "job.failed", "job.cancelled"],
    )
    # when a job of ours and one of theirs run, and the deliveries are sent
    job_id = run_a_job(svc, http, user.headers, user.user_id)
    run_a_job(svc, http, other.headers, other.user_id)
    assert drain(svc) == 3
    # then the receiver got our job's three events once each, signed with the secret
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [b["type"] for b in bodies] == ["job.queued", "job.processing", "job.completed"]
    assert {b["data"]["job_id"] for b in bodies} == {job_id}
    assert len({b["id"] for b in bodies}) == 3
    for got in receiver.received:
        header = got.headers[signing.HEADER]
        assert WebhooksAPI.verify_signature(created["secret"], got.body, header)
        assert not WebhooksAPI.verify_signature("another-secret-0123456789", got.body, header)
        assert got.headers["X-QCOS-Event"] == json.loads(got.body)["type"]
    # and the log has one delivered attempt each
    entries = log(http, user.headers, created["id"])
    assert [(e["attempt"], e["outcome"], e["status_code"]) for e in entries] == [
        (1, "delivered", 200)
    ] * 3


def test_a_receiver_failing_twice_sees_three_attempts_in_the_log(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any], receiver: Receiver
) -> None:
    # given a receiver that answers 500 twice, then 200
    receiver.statuses = [500, 500]
    user = make_user()
    created = subscribe(http, user.headers, receiver.url, ["job.completed"])
    # when a job completes and its delivery is retried
    run_a_job(svc, http, user.headers, user.user_id)
    assert drain(svc) == 3
    # then the receiver saw the same delivery three times, each validly signed
    assert len(receiver.received) == 3
    assert len({r.headers["X-QCOS-Delivery"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    for got in receiver.received:
        assert signing.verify(created["secret"], got.body, got.headers[signing.HEADER])
    # and the log shows the three attempts with the receiver's statuses, newest first
    entries = log(http, user.headers, created["id"])
    assert [(e["attempt"], e["outcome"], e["status_code"]) for e in entries] == [
        (3, "delivered", 200),
        (2, "retrying", 500),
        (1, "retrying", 500),
    ]
    assert entries[1]["error"] == "receiver answered 500"


def test_a_receiver_that_never_succeeds_is_marked_failed_after_the_last_attempt(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any], receiver: Receiver
) -> None:
    receiver.statuses = [503] * 10
    user = make_user()
    created = subscribe(http, user.headers, receiver.url, ["job.completed"])
    run_a_job(svc, http, user.headers, user.user_id)
    assert drain(svc) == 4
    entries = log(http, user.headers, created["id"])
    assert [(e["attempt"], e["outcome"]) for e in entries] == [
        (4, "failed"),
        (3, "retrying"),
        (2, "retrying"),
        (1, "retrying"),
    ]


def test_an_unreachable_receiver_is_logged_without_a_status(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any], receiver: Receiver
) -> None:
    user = make_user()
    created = subscribe(http, user.headers, "http://127.0.0.1:9/closed", ["job.completed"])
    run_a_job(svc, http, user.headers, user.user_id)
    drain(svc)
    entries = log(http, user.headers, created["id"])
    assert entries[0]["status_code"] is None and entries[0]["outcome"] == "failed"
    assert "ConnectionRefused" in entries[0]["error"]


def test_a_deleted_webhook_gets_no_more_deliveries(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any], receiver: Receiver
) -> None:
    user = make_user()
    created = subscribe(http, user.headers, receiver.url, ["job.completed"])
    deleted = http(
        webhooks.delete_webhook,
        "DELETE",
        f"/api/v1/webhooks/{created['id']}",
        headers=user.headers,
        route_params={"webhook_id": created["id"]},
    )
    assert deleted.status == 204
    run_a_job(svc, http, user.headers, user.user_id)
    drain(svc)
    assert receiver.received == []
