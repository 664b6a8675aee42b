"""`shared.webhooks.schemas` (over `shared.webhooks.models`' stored types): what a subscriber
may ask for, and what the API shows of a subscription and its deliveries."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.webhooks.models import EVENT_TYPES, Attempt, Subscription, masked
from shared.webhooks.schemas import CreateWebhookRequest, DeliveriesQuery, delivery_view, view

SECRET = "whsec_abcdefghijklmnop1234"
SUBSCRIPTION = Subscription(
    webhook_id="wh_1",
    user_id="user-1",
    url="https://ci.example.com/hooks",
    events=("job.completed", "job.failed"),
    description="CI",
    secret=SECRET,
    created_at="2026-03-14T12:00:00.000Z",
)


def test_a_subscription_wants_only_the_events_it_named() -> None:
    assert SUBSCRIPTION.wants("job.completed") and SUBSCRIPTION.wants("job.failed")
    assert not SUBSCRIPTION.wants("job.queued")


def test_the_secret_is_shown_whole_once_and_masked_in_every_later_view() -> None:
    # when
    created, later = view(SUBSCRIPTION, reveal=True), view(SUBSCRIPTION)
    # then
    assert created.secret == SECRET
    assert later.secret == "whsec_...1234"
    assert later.model_dump() == {
        "id": "wh_1",
        "url": "https://ci.example.com/hooks",
        "events": ["job.completed", "job.failed"],
        "description": "CI",
        "secret": "whsec_...1234",
        "created_at": "2026-03-14T12:00:00.000Z",
        "active": True,
    }


def test_a_short_secret_is_masked_entirely() -> None:
    assert masked("0123456789abcdef") == "..."  # 16 characters: showing 10 of them says too much
    assert masked("0123456789abcdefg") == "012345...defg"


def test_a_request_names_a_url_and_events_of_the_catalog_only() -> None:
    # given / when
    request = CreateWebhookRequest.model_validate(
        {"url": "https://ci.example.com/h", "events": ["job.completed"]}
    )
    # then
    assert request.description == "" and request.secret is None
    with pytest.raises(ValidationError):
        CreateWebhookRequest.model_validate({"url": "https://x", "events": ["job.exploded"]})
    with pytest.raises(ValidationError):
        CreateWebhookRequest.model_validate({"url": "https://x", "events": []})


@pytest.mark.parametrize(
    "field",
    [{"owner": "user-2"}, {"user_id": "user-2"}, {"active": False}, {"webhook_id": "wh_x"}],
)
def test_a_request_cannot_set_what_the_gateway_decides(field: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CreateWebhookRequest.model_validate(
            {"url": "https://ci.example.com/h", "events": ["job.failed"], **field}
        )


def test_a_chosen_secret_is_16_to_128_characters_and_the_url_at_most_2048() -> None:
    base = {"url": "https://ci.example.com/h", "events": ["job.failed"]}
    CreateWebhookRequest.model_validate({**base, "secret": "s" * 16})
    for secret in ("s" * 15, "s" * 129):
        with pytest.raises(ValidationError):
            CreateWebhookRequest.model_validate({**base, "secret": secret})
    with pytest.raises(ValidationError):
        CreateWebhookRequest.model_validate({**base, "url": "https://x/" + "a" * 2040})


def test_the_catalog_is_every_status_change_of_a_job() -> None:
    assert EVENT_TYPES == (
        "job.queued",
        "job.processing",
        "job.completed",
        "job.failed",
        "job.cancelled",
    )


def test_a_delivery_attempt_is_shown_with_the_event_it_carried() -> None:
    attempt = Attempt(
        delivery_id="dlv_1",
        webhook_id="wh_1",
        event_type="job.completed",
        event_id="evt_1",
        attempt=2,
        outcome="retrying",
        status_code=503,
        duration_ms=120,
        error="HTTP 503",
        at="2026-03-14T12:00:05.000Z",
    )
    assert delivery_view(attempt).model_dump() == {
        "delivery_id": "dlv_1",
        "event_id": "evt_1",
        "event": "job.completed",
        "attempt": 2,
        "outcome": "retrying",
        "status_code": 503,
        "duration_ms": 120,
        "error": "HTTP 503",
        "at": "2026-03-14T12:00:05.000Z",
    }


def test_a_page_of_deliveries_is_1_to_200_long() -> None:
    assert DeliveriesQuery().limit == 50
    for limit in (0, 201):
        with pytest.raises(ValidationError):
            DeliveriesQuery.model_validate({"limit": limit})
    with pytest.raises(ValidationError):
        DeliveriesQuery.model_validate({"limit": 5, "offset": 10})
