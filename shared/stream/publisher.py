"""Events to Web PubSub, off the job path (`shared.events.Background`): one `send_to_group`
per event that has a stream message; a slow or absent service never slows a job down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from shared.events import Background, Event
from shared.stream import messages

QUEUE_SIZE = Background.QUEUE_SIZE


class GroupSender(Protocol):
    def send_to_group(self, group: str, message: dict[str, object], **kwargs: object) -> None: ...


class Publisher(Background):
    """Subscribed to `shared.events` from `start()` until `close()`."""

    def __init__(self, client: Callable[[], GroupSender], queue_size: int = QUEUE_SIZE) -> None:
        super().__init__("stream", self._send, queue_size=queue_size)
        self._client = client  # called once, in the background thread
        self._sender: GroupSender | None = None
        self.sent = 0

    def _send(self, event: Event) -> None:
        outgoing = messages.for_event(event)
        if outgoing is None:
            return
        if self._sender is None:
            self._sender = self._client()
        self._sender.send_to_group(
            outgoing.group, outgoing.message, content_type="application/json"
        )
        self.sent += 1
