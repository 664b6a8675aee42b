"""Storage calls counted where they leave the process: at the clients' HTTP transport.

Every Table, Queue and Blob client that `Storage` builds sends through one transport, which
adds each request (a retry is another request) to the `Tally` of the current context, when
one is set. A test or a benchmark sets one around the work it measures:

    with calls.counted() as tally:
        handle(request)
    assert tally.total <= 2

Contexts are copied into the threads a request starts with `contextvars.copy_context()`, so
work done for the request in another thread counts too; work deliberately left for after the
answer runs under `calls.detached()` and counts for nobody.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Tally:
    """The calls made while this tally was current, by (service, resource) and in order."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (method, service, name)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, method: str, service: str, name: str) -> None:
        with self._lock:
            self.calls.append((method, service, name))

    @property
    def total(self) -> int:
        return len(self.calls)

    def by_resource(self) -> Counter[str]:
        """Calls per table, queue or container name (a table's batch counts as its table)."""
        return Counter(name for _, _, name in self.calls)

    def excluding(self, *names: str) -> int:
        """How many calls went to resources other than `names`."""
        return sum(1 for _, _, name in self.calls if name not in names)


_current: contextvars.ContextVar[Tally | None] = contextvars.ContextVar(
    "storage_calls", default=None
)


@contextmanager
def counted() -> Iterator[Tally]:
    """Count the storage calls made in this context (and contexts copied from it)."""
    tally = Tally()
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)


@contextmanager
def detached() -> Iterator[None]:
    """Run work that is not part of the current request: its calls count for no tally."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def record(method: str, service: str, name: str) -> None:
    """Called by a client's transport for every request it sends (`service`: table, queue or
    container; `name`: the client's table, queue or container)."""
    tally = _current.get()
    if tally is not None:
        tally.add(method, service, name)
