"""Status changes of jobs, network jobs and backends, published in one place.

Every change of a job's or a network job's status (written by its repository) and of a
backend's status (seen by the network service) is published here. Subscribers run in the
publishing thread and must be quick; one that raises is logged and never fails the write that
published. Work that does I/O subscribes through `Background`, so that it runs off the
publishing thread: `shared.stream` (to Web PubSub) and `shared.webhooks` (to the delivery
queue) do.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from shared import clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEnded:
    """A network job's run that just ended: its id, its backend's network id, its status."""

    run_id: str
    backend: str
    status: str


@dataclass(frozen=True)
class Progress:
    """How far a network job is: `runs_finished` (None: not known) of `runs_planned`, and
    the run whose end moved it, when one did."""

    runs_planned: int
    runs_finished: int | None = None
    run: RunEnded | None = None


@dataclass(frozen=True)
class Event:
    kind: str  # "job", "network_job" or "backend"
    id: str  # the job id or backend id
    status: str
    user_id: str | None = None  # the owner, for jobs
    backend: str | None = None  # the network id of the backend a job runs on
    queue_depth: int | None = None  # for backends, when the publisher knows it
    network_job_id: str | None = None  # for a job that is a network job's run
    progress: Progress | None = None  # for network jobs
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


class Background:
    """A subscriber whose work runs off the publishing thread.

    The subscriber itself (`offer`) only puts an event that `wants` takes on a bounded queue:
    no I/O, never blocks, so it puts nothing on a request's or a job's path. One thread,
    started on the first event, hands each to `handle`. A full queue drops the event (counted
    in `dropped`, with a warning); a `handle` that raises is counted in `failed` and logged,
    and the next event goes on. One runs per `name` in a process: starting one stops the one
    before it (each test's services replace the last test's).
    """

    QUEUE_SIZE = 10_000
    _STOP = object()
    _running: dict[str, Background] = {}
    _running_lock = threading.Lock()

    def __init__(
        self,
        name: str,
        handle: Subscriber,
        wants: Callable[[Event], bool] = lambda event: True,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.name = name
        self._handle = handle
        self._wants = wants
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self.dropped = 0
        self.failed = 0

    def start(self) -> Self:
        """Subscribe, in place of this process's previous subscriber of the same name."""
        with Background._running_lock:
            previous = Background._running.get(self.name)
            Background._running[self.name] = self
        if previous is not None:
            previous.close()
        self._unsubscribe = subscribe(self.offer)
        return self

    def offer(self, event: Event) -> None:
        """Queue `event` for `handle` when it is wanted; never blocks, never raises."""
        if not self._wants(event):
            return
        if self._thread is None:
            self._start_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "%s: queue full, %d event(s) dropped so far", self.name, self.dropped
                )

    @property
    def pending(self) -> int:
        """Events offered and not yet handled."""
        return self._queue.unfinished_tasks

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every event offered so far is handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking events; handle what is queued (for up to `timeout`), then stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        thread = self._thread
        if thread is not None:
            try:
                self._queue.put(self._STOP, timeout=timeout)
            except queue.Full:
                return
            thread.join(timeout)

    def _start_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=f"qcos-{self.name}", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is self._STOP:
                    return
                assert isinstance(item, Event)
                self._handle(item)
            except Exception:  # this event is lost, not the next
                self.failed += 1
                logger.warning("%s: could not handle %s", self.name, item, exc_info=True)
            finally:
                self._queue.task_done()
