"""Request and response models of the webhook API (`/api/v1/webhooks...`; the OpenAPI spec is
generated from these), and their converters from the domain."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.webhooks.models import (
    EVENT_TYPES,
    MAX_DESCRIPTION_LENGTH,
    MAX_URL_LENGTH,
    Attempt,
    EventType,
    Subscription,
    masked,
)


class CreateWebhookRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://ci.example.com/hooks/qcos",
                    "events": ["job.completed", "job.failed"],
                    "description": "CI",
                }
            ]
        },
    )

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="https URL of the receiver; it must resolve to public addresses only",
    )
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    secret: str | None = Field(
        None,
        min_length=16,
        max_length=128,
        description="Your signing secret; unset: one is made and answered once",
    )


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    secret: str = Field(description="Masked; the whole secret is answered once, at creation")
    created_at: str
    active: bool = True


class WebhookList(BaseModel):
    webhooks: list[WebhookView]
    count: int
    events: list[str] = Field(description="The event catalog")


class DeliveriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200)


class DeliveryView(BaseModel):
    delivery_id: str
    event_id: str
    event: str
    attempt: int
    outcome: str = Field(description="delivered, retrying (another attempt is queued) or failed")
    status_code: int | None = Field(description="The receiver's HTTP status; null when none")
    duration_ms: int
    error: str | None
    at: str


class DeliveryList(BaseModel):
    webhook_id: str
    deliveries: list[DeliveryView] = Field(description="Newest first")
    count: int


def view(subscription: Subscription, *, reveal: bool = False) -> WebhookView:
    secret = subscription.secret
    return WebhookView(
        id=subscription.webhook_id,
        url=subscription.url,
        events=list(subscription.events),
        description=subscription.description,
        secret=secret if reveal else masked(secret),
        created_at=subscription.created_at,
    )


def delivery_view(attempt: Attempt) -> DeliveryView:
    return DeliveryView(
        delivery_id=attempt.delivery_id,
        event_id=attempt.event_id,
        event=attempt.event_type,
        attempt=attempt.attempt,
        outcome=attempt.outcome,
        status_code=attempt.status_code,
        duration_ms=attempt.duration_ms,
        error=attempt.error,
        at=attempt.at,
    )
