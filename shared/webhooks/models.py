"""Subscriptions and delivery attempts (the API's request and answer models are in
`shared.webhooks.schemas`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Every status change of the subscriber's own jobs, v1 jobs and v2 network jobs alike
# (`data.kind` tells them apart).
EVENT_TYPES = ("job.queued", "job.processing", "job.completed", "job.failed", "job.cancelled")
EventType = Literal["job.queued", "job.processing", "job.completed", "job.failed", "job.cancelled"]

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 256


@dataclass(frozen=True)
class Subscription:
    webhook_id: str
    user_id: str
    url: str
    events: tuple[str, ...]
    description: str
    secret: str
    created_at: str

    def wants(self, event_type: str) -> bool:
        return event_type in self.events


Outcome = Literal["delivered", "retrying", "failed"]


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as the log shows it."""

    delivery_id: str
    webhook_id: str
    event_type: str
    event_id: str
    attempt: int
    outcome: Outcome
    status_code: int | None  # the receiver's answer; None when there was none
    duration_ms: int
    error: str | None
    at: str


def masked(secret: str) -> str:
    """What every read after the first shows of a secret."""
    return f"{secret[:6]}...{secret[-4:]}" if len(secret) > 16 else "..."
