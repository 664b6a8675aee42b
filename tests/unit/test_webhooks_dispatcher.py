"""`shared.webhooks.dispatcher`: job events become one delivery message per subscription that
wants them, off the publishing thread, with the owner's subscriptions cached briefly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shared.events import Event
from shared.webhooks.dispatcher import Dispatcher, event_type, payload
from shared.webhooks.models import Subscription

USER = "user-1"


def subscription(webhook_id: str, *events: str, user_id: str = USER) -> Subscription:
    return Subscription(
        webhook_id=webhook_id,
        user_id=user_id,
        url=f"https://ci.example.com/{webhook_id}",
        events=events,
        description="",
        secret="whsec_" + "0" * 20,
        created_at="2026-03-14T12:00:00.000Z",
    )


class Subscribers:
    """The owners' subscriptions, counting how often they are looked up."""

    def __init__(self, *subscriptions: Subscription) -> None:
        self.subscriptions = list(subscriptions)
        self.lookups = 0

    def __call__(self, user_id: str) -> list[Subscription]:
        self.lookups += 1
        return [s for s in self.subscriptions if s.user_id == user_id]


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    return []


@contextmanager
def running(
    lookup: Callable[[str], list[Subscription]],
    sent: list[dict[str, Any]],
    cache_seconds: float = 60.0,
) -> Iterator[Dispatcher]:
    """A dispatcher fed by hand (`offer`), enqueueing into `sent`; closed after."""
    d = Dispatcher(lookup, sent.append, cache_seconds=cache_seconds)
    try:
        yield d
    finally:
        d.close()


def handled(d: Dispatcher, *events: Event) -> None:
    for event in events:
        d.offer(event)
    assert d.wait_idle()


def job(status: str, user_id: str | None = USER, **fields: Any) -> Event:
    return Event("job", "job-1", status, user_id=user_id, at="2026-03-14T12:00:01.000Z", **fields)


def test_each_subscription_that_wants_the_event_gets_its_own_delivery(
    sent: list[dict[str, Any]],
) -> None:
    # given two subscriptions to completions and one to failures only
    subscribers = Subscribers(
        subscription("wh_a", "job.completed"),
        subscription("wh_b", "job.completed", "job.failed"),
        subscription("wh_c", "job.failed"),
        subscription("wh_other", "job.completed", user_id="user-2"),
    )
    with running(subscribers, sent) as d:
        # when the user's job completes
        handled(d, job("completed", backend="ibm_quantum/ibm_brisbane"))
    # then the two that want it get a first attempt each, carrying one and the same event
    assert [m["webhook_id"] for m in sent] == ["wh_a", "wh_b"]
    assert all(m["user_id"] == USER and m["attempt"] == 1 for m in sent)
    assert len({m["delivery_id"] for m in sent}) == 2
    assert sent[0]["event"] == sent[1]["event"]
    assert sent[0]["event"]["type"] == "job.completed"


@pytest.mark.parametrize(
    "event",
    [
        Event("backend", "ibm_quantum/ibm_brisbane", "offline"),
        Event("job", "job-1", "completed"),  # no owner
        Event("job", "job-1", "scheduled", user_id=USER),  # not a status webhooks carry
        Event("run", "job-1", "completed", user_id=USER),
    ],
)
def test_events_webhooks_do_not_carry_send_nothing_and_look_nothing_up(
    event: Event, sent: list[dict[str, Any]]
) -> None:
    subscribers = Subscribers(subscription("wh_a", *("job.completed", "job.failed")))
    with running(subscribers, sent) as d:
        handled(d, event)
    assert event_type(event) is None
    assert sent == [] and subscribers.lookups == 0


def test_a_network_jobs_status_is_a_job_event_of_its_kind() -> None:
    event = Event("network_job", "net-1", "queued", user_id=USER, at="2026-03-14T12:00:00.000Z")
    body = payload(event, "job.queued")
    assert event_type(event) == "job.queued"
    assert body["data"] == {"job_id": "net-1", "kind": "network_job", "status": "queued"}
    assert body["id"].startswith("evt_") and body["created_at"] == "2026-03-14T12:00:00.000Z"


def test_the_payload_names_the_backend_when_the_job_has_one() -> None:
    event = job("processing", backend="braket/forte-1")
    assert payload(event, "job.processing")["data"]["backend"] == "braket/forte-1"
    assert payload(event, "job.processing")["id"] != payload(event, "job.processing")["id"]


def test_subscriptions_are_looked_up_once_per_user_while_cached_and_again_when_changed(
    sent: list[dict[str, Any]],
) -> None:
    # given a user's subscription, cached for a minute
    subscribers = Subscribers(subscription("wh_a", "job.queued", "job.completed"))
    with running(subscribers, sent) as d:
        # when three events come in
        handled(d, job("queued"), job("processing"), job("completed"))
        # then one lookup served them all
        assert subscribers.lookups == 1 and len(sent) == 2
        # and when this process changes the user's subscriptions, the next event looks again
        subscribers.subscriptions.append(subscription("wh_b", "job.failed"))
        d.invalidate(USER)
        handled(d, job("failed"))
        assert subscribers.lookups == 2
        assert [m["webhook_id"] for m in sent] == ["wh_a", "wh_a", "wh_b"]


def test_a_lookup_that_fails_loses_that_event_only(sent: list[dict[str, Any]]) -> None:
    # given a lookup that fails once
    calls: list[str] = []

    def flaky(user_id: str) -> list[Subscription]:
        calls.append(user_id)
        if len(calls) == 1:
            raise ConnectionError("storage unreachable")
        return [subscription("wh_a", "job.completed", "job.failed")]

    with running(flaky, sent, cache_seconds=0.0) as d:
        # when two events come in
        handled(d, job("failed"), job("completed"))
    # then the second is still delivered
    assert d.failed == 1
    assert [m["event"]["type"] for m in sent] == ["job.completed"]
