"""Subscriptions (table `webhooks`, PartitionKey = owner, RowKey = webhook id), the delivery
log (table `webhookdeliveries`, PartitionKey = webhook id, RowKey newest first) and the
delivery queue (`webhook-deliveries`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.storage import Storage, get_or_none, insert_new
from shared.storage.clients import (
    WEBHOOK_DELIVERIES_QUEUE,
    WEBHOOK_DELIVERIES_TABLE,
    WEBHOOKS_TABLE,
)
from shared.storage.query import literal, page
from shared.webhooks.models import Attempt, Subscription

_LATEST_MS = 10**13  # RowKeys count down from here, so a partition lists newest first


class WebhookRepository:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    # -- subscriptions ---------------------------------------------------------------------------

    def create(self, subscription: Subscription) -> bool:
        """Store `subscription`; False when its id is taken."""
        entity = {
            "PartitionKey": subscription.user_id,
            "RowKey": subscription.webhook_id,
            "url": subscription.url,
            "events": ",".join(subscription.events),
            "description": subscription.description,
            "secret": subscription.secret,
            "created_at": subscription.created_at,
        }
        return insert_new(self._storage.table(WEBHOOKS_TABLE), entity) is not None

    def of_user(self, user_id: str) -> list[Subscription]:
        """The user's subscriptions, oldest first (one query)."""
        rows = self._storage.table(WEBHOOKS_TABLE).query_entities(
            f"PartitionKey eq {literal(user_id)}"
        )
        found = [_subscription(row) for row in rows]
        return sorted(found, key=lambda s: (s.created_at, s.webhook_id))

    def get(self, user_id: str, webhook_id: str) -> Subscription | None:
        row = get_or_none(self._storage.table(WEBHOOKS_TABLE), user_id, webhook_id)
        return None if row is None else _subscription(row)

    def delete(self, user_id: str, webhook_id: str) -> None:
        try:
            self._storage.table(WEBHOOKS_TABLE).delete_entity(user_id, webhook_id)
        except ResourceNotFoundError:
            pass

    # -- deliveries ------------------------------------------------------------------------------

    def enqueue(self, message: Mapping[str, Any], delay_seconds: int = 0) -> None:
        self._storage.queue(WEBHOOK_DELIVERIES_QUEUE).send_message(
            json.dumps(message, separators=(",", ":")), visibility_timeout=delay_seconds or None
        )

    def record(self, attempt: Attempt) -> None:
        """Add `attempt` to its webhook's log."""
        inverted = _LATEST_MS - int(time.time() * 1000)
        entity = {
            "PartitionKey": attempt.webhook_id,
            "RowKey": f"{inverted:013d}-{attempt.delivery_id}-{attempt.attempt:03d}",
            "delivery_id": attempt.delivery_id,
            "event_type": attempt.event_type,
            "event_id": attempt.event_id,
            "attempt": attempt.attempt,
            "outcome": attempt.outcome,
            "status_code": attempt.status_code if attempt.status_code is not None else -1,
            "duration_ms": attempt.duration_ms,
            "error": attempt.error or "",
            "at": attempt.at,
        }
        self._storage.table(WEBHOOK_DELIVERIES_TABLE).upsert_entity(entity)

    def attempts(self, webhook_id: str, limit: int) -> list[Attempt]:
        """The webhook's latest `limit` attempts, newest first."""
        table = self._storage.table(WEBHOOK_DELIVERIES_TABLE)
        rows, _ = page(table, f"PartitionKey eq {literal(webhook_id)}", limit, None)
        return [_attempt(row) for row in rows[:limit]]


def _subscription(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        webhook_id=row["RowKey"],
        user_id=row["PartitionKey"],
        url=row["url"],
        events=tuple(e for e in str(row.get("events", "")).split(",") if e),
        description=row.get("description", ""),
        secret=row["secret"],
        created_at=row["created_at"],
    )


def _attempt(row: Mapping[str, Any]) -> Attempt:
    status = int(row.get("status_code", -1))
    return Attempt(
        delivery_id=row["delivery_id"],
        webhook_id=row["PartitionKey"],
        event_type=row["event_type"],
        event_id=row.get("event_id", ""),
        attempt=int(row["attempt"]),
        outcome=row["outcome"],
        status_code=None if status < 0 else status,
        duration_ms=int(row.get("duration_ms", 0)),
        error=row.get("error") or None,
        at=row["at"],
    )
