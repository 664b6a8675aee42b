"""Job events to delivery messages, off the job path.

A `shared.events.Background` subscriber: in its thread, for each job event, it looks up the
owner's subscriptions (cached for `CACHE_SECONDS`, dropped at once when this process changes them)
and enqueues one message per subscription that wants the event on `webhook-deliveries`; the
queue function delivers it (`service.Webhooks.deliver`). Its storage calls count for no
request (`shared.storage.calls.detached`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from shared.events import Background, Event
from shared.storage import calls
from shared.webhooks.models import EVENT_TYPES, Subscription

logger = logging.getLogger(__name__)

QUEUE_SIZE = Background.QUEUE_SIZE
CACHE_SECONDS = 5.0
MAX_CACHED_USERS = 10_000
_KINDS = ("job", "network_job")


def event_type(event: Event) -> str | None:
    """The webhook event `event` is (`job.<status>`), or None when webhooks carry none."""
    if event.kind not in _KINDS or not event.user_id:
        return None
    name = f"job.{event.status}"
    return name if name in EVENT_TYPES else None


def payload(event: Event, name: str) -> dict[str, Any]:
    """The body every receiver of `event` gets (signed as sent)."""
    data: dict[str, Any] = {"job_id": event.id, "kind": event.kind, "status": event.status}
    if event.backend:
        data["backend"] = event.backend
    return {"id": "evt_" + uuid.uuid4().hex, "type": name, "created_at": event.at, "data": data}


class Dispatcher(Background):
    def __init__(
        self,
        lookup: Callable[[str], list[Subscription]],
        enqueue: Callable[[dict[str, Any]], None],
        queue_size: int = QUEUE_SIZE,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        super().__init__(
            "webhooks",
            self._dispatch,
            wants=lambda event: event_type(event) is not None,
            queue_size=queue_size,
        )
        self._lookup = lookup
        self._enqueue = enqueue
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, list[Subscription]]] = {}
        self.enqueued = 0

    def invalidate(self, user_id: str) -> None:
        """Forget the user's cached subscriptions (they changed in this process)."""
        self._cache.pop(user_id, None)

    def _dispatch(self, event: Event) -> None:
        name = event_type(event)
        assert name is not None and event.user_id is not None
        with calls.detached():  # this thread's calls are no request's
            wanted = [s for s in self._subscriptions(event.user_id) if s.wants(name)]
            body = payload(event, name) if wanted else {}
            for subscription in wanted:
                self._enqueue(
                    {
                        "delivery_id": "dlv_" + uuid.uuid4().hex,
                        "user_id": subscription.user_id,
                        "webhook_id": subscription.webhook_id,
                        "attempt": 1,
                        "event": body,
                    }
                )
                self.enqueued += 1

    def _subscriptions(self, user_id: str) -> list[Subscription]:
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._lookup(user_id)
        if len(self._cache) >= MAX_CACHED_USERS:
            self._cache.clear()
        self._cache[user_id] = (now + self._cache_seconds, found)
        return found
