"""Events to Web PubSub, off the job path (`shared.events.Background`): one `send_to_group`
per event that has a stream message; a slow or absent service never slows a job down.

A terminal status is final: once a job's terminal update is sent, a later non-terminal one of
the same job (a network job's progress read just before it ended) is dropped here. Across
instances that can still happen, so clients keep the same rule (README, "Live updates").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from shared.events import Background, Event
from shared.jobs.models import TERMINAL_STATUSES
from shared.stream import messages

QUEUE_SIZE = Background.QUEUE_SIZE
ENDED_REMEMBERED = 10_000  # the latest jobs whose terminal update was sent


class GroupSender(Protocol):
    def send_to_group(self, group: str, message: dict[str, object], **kwargs: object) -> None: ...


class Publisher(Background):
    """Subscribed to `shared.events` from `start()` until `close()`."""

    def __init__(self, client: Callable[[], GroupSender], queue_size: int = QUEUE_SIZE) -> None:
        super().__init__("stream", self._send, queue_size=queue_size)
        self._client = client  # called once, in the background thread
        self._sender: GroupSender | None = None
        self._ended: OrderedDict[str, None] = OrderedDict()
        self.sent = 0
        self.stale = 0  # non-terminal updates dropped after their job's terminal one

    def _send(self, event: Event) -> None:
        outgoing = messages.for_event(event)
        if outgoing is None or self._after_end(event):
            return
        if self._sender is None:
            self._sender = self._client()
        self._sender.send_to_group(
            outgoing.group, outgoing.message, content_type="application/json"
        )
        self.sent += 1

    def _after_end(self, event: Event) -> bool:
        """True for a job's non-terminal update after its terminal one (remembers terminals)."""
        if event.kind == "backend":
            return False
        if event.status in TERMINAL_STATUSES:
            self._ended[event.id] = None
            self._ended.move_to_end(event.id)
            if len(self._ended) > ENDED_REMEMBERED:
                self._ended.popitem(last=False)
            return False
        if event.id in self._ended:
            self.stale += 1
            return True
        return False
