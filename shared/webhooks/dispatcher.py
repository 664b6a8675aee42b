"""Job events to delivery messages, off the job path.

The subscriber `offer` only puts the event on a bounded in-process queue (no I/O, never
blocks). One background thread, started on the first event, looks up the owner's
subscriptions (cached for `CACHE_SECONDS`, dropped at once when this process changes them)
and enqueues one message per subscription that wants the event on `webhook-deliveries`; the
queue function delivers it (`service.Webhooks.deliver`). Its storage calls count for no
request (`shared.storage.calls.detached`). A full queue drops the event, with a warning.

One dispatcher is subscribed per process: starting one stops the one before it (the
services of a test replace the last test's).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from shared import events
from shared.events import Event
from shared.storage import calls
from shared.webhooks.models import EVENT_TYPES, Subscription

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
CACHE_SECONDS = 5.0
MAX_CACHED_USERS = 10_000
_KINDS = ("job", "network_job")
_STOP = object()

_active: Dispatcher | None = None
_active_lock = threading.Lock()


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


class Dispatcher:
    def __init__(
        self,
        lookup: Callable[[str], list[Subscription]],
        enqueue: Callable[[dict[str, Any]], None],
        queue_size: int = QUEUE_SIZE,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._lookup = lookup
        self._enqueue = enqueue
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, list[Subscription]]] = {}
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self.dropped = 0
        self.enqueued = 0
        self.failed = 0

    def start(self) -> Dispatcher:
        """Subscribe to `shared.events`, in place of the process's previous dispatcher."""
        global _active
        with _active_lock:
            previous, _active = _active, self
        if previous is not None:
            previous.close()
        self._unsubscribe = events.subscribe(self.offer)
        return self

    def offer(self, event: Event) -> None:
        """Queue `event` for dispatch; never blocks, never raises."""
        if event_type(event) is None:
            return
        if self._thread is None:
            self._start_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("webhook queue full: %d event(s) dropped so far", self.dropped)

    def invalidate(self, user_id: str) -> None:
        """Forget the user's cached subscriptions (they changed in this process)."""
        self._cache.pop(user_id, None)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every event offered so far is dispatched; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking events; dispatch what is queued (for up to `timeout`), then stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        thread = self._thread
        if thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                return
            thread.join(timeout)

    def _start_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="qcos-webhooks", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        with calls.detached():
            while True:
                item = self._queue.get()
                try:
                    if item is _STOP:
                        return
                    assert isinstance(item, Event)
                    self._dispatch(item)
                finally:
                    self._queue.task_done()

    def _dispatch(self, event: Event) -> None:
        name = event_type(event)
        assert name is not None and event.user_id is not None
        try:
            wanted = [s for s in self._subscriptions(event.user_id) if s.wants(name)]
            if not wanted:
                return
            body = payload(event, name)
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
        except Exception:  # storage down: this event's deliveries are lost, not the next's
            self.failed += 1
            logger.warning(
                "webhooks: could not dispatch %s %s", event.kind, event.id, exc_info=True
            )

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
