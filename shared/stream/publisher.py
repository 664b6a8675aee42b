"""Events to Web PubSub, off the job path.

The subscriber `offer` only puts the event on a bounded in-process queue (no I/O, never
blocks); one background thread, started on the first event, drains it and calls the service.
When the queue is full the event is dropped and counted, with a warning: a slow or absent
service never slows a job down.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from shared import events
from shared.events import Event
from shared.stream import messages

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
_STOP = object()


class GroupSender(Protocol):
    def send_to_group(self, group: str, message: dict[str, object], **kwargs: object) -> None: ...


class Publisher:
    """Subscribed to `shared.events` from `start()` until `close()`."""

    def __init__(self, client: Callable[[], GroupSender], queue_size: int = QUEUE_SIZE) -> None:
        self._client = client  # called once, in the background thread
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self.dropped = 0
        self.sent = 0
        self.failed = 0

    def start(self) -> Publisher:
        self._unsubscribe = events.subscribe(self.offer)
        return self

    def offer(self, event: Event) -> None:
        """Queue `event` for sending; never blocks, never raises."""
        if self._thread is None:
            self._start_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("stream queue full: %d event(s) dropped so far", self.dropped)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking events; send what is queued (for up to `timeout`), then stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        thread = self._thread
        if thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            thread.join(timeout)

    def _start_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="qcos-stream", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        client: GroupSender | None = None
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Event)
            outgoing = messages.for_event(item)
            if outgoing is None:
                continue
            try:
                if client is None:
                    client = self._client()
                client.send_to_group(
                    outgoing.group, outgoing.message, content_type="application/json"
                )
                self.sent += 1
            except Exception:  # the service down or refusing: this update is lost, not the next
                self.failed += 1
                logger.warning(
                    "stream: could not send %s %s to Web PubSub",
                    item.kind,
                    item.id,
                    exc_info=True,
                )
