"""Status changes of jobs, network jobs and backends, published in one place.

Every change of a job's or a network job's status (written by its repository) and of a
backend's status (seen by the network service) is published here. Subscribers run in the
publishing thread and must be quick; one that raises is logged and never fails the write that
published. `shared.stream` subscribes here to stream them to clients.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from shared import clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    kind: str  # "job", "network_job" or "backend"
    id: str  # the job id or backend id
    status: str
    user_id: str | None = None  # the owner, for jobs
    backend: str | None = None  # the backend a job runs on
    queue_depth: int | None = None  # for backends, when the publisher knows it
    at: str = field(default_factory=clock.now_iso)


Subscriber = Callable[[Event], None]
_subscribers: list[Subscriber] = []
_lock = threading.Lock()


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Call `subscriber` with every event from now on; returns the function that stops it."""
    with _lock:
        _subscribers.append(subscriber)

    def unsubscribe() -> None:
        with _lock:
            if subscriber in _subscribers:
                _subscribers.remove(subscriber)

    return unsubscribe


def publish(event: Event) -> None:
    """Hand `event` to every subscriber; never raises."""
    logger.debug("%s %s -> %s", event.kind, event.id, event.status)
    with _lock:
        subscribers = list(_subscribers)
    for subscriber in subscribers:
        try:
            subscriber(event)
        except Exception:
            logger.exception("event subscriber failed on %s %s", event.kind, event.id)
