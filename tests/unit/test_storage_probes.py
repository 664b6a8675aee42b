"""`shared.storage.probes`: bounded answers to "is storage answering?" for `GET /` and
`GET /ready`, with stand-ins for the storage clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError

from shared.storage.clients import JOBS_QUEUE, Storage
from shared.storage.probes import queue_reachable, readiness


class Client:
    """A table, queue or container client whose every call answers, fails or hangs."""

    def __init__(self, fault: BaseException | None = None, hang: threading.Event | None = None):
        self.fault, self.hang = fault, hang
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> dict[str, str]:
            self.calls.append(name)
            if self.hang is not None:
                self.hang.wait(10)
            if self.fault is not None:
                raise self.fault
            return {}

        return call


class Probed:
    """The storage a probe sees: one client per service."""

    def __init__(self, tables: Client, queues: Client, blobs: Client) -> None:
        self.tables, self.queues, self.blobs = tables, queues, blobs
        self.unchecked: list[str] = []

    def table(self, name: str) -> Client:
        return self.tables

    def queue(self, name: str) -> Client:
        return self.queues

    def container(self, name: str) -> Client:
        return self.blobs

    def queue_unchecked(self, name: str) -> Client:
        self.unchecked.append(name)
        return self.queues


@pytest.fixture
def released() -> Iterator[threading.Event]:
    """An event that hanging calls wait on; set after the test so no probe thread lingers."""
    gate = threading.Event()
    yield gate
    gate.set()


def storage(tables: Client, queues: Client, blobs: Client) -> Storage:
    return cast(Storage, Probed(tables, queues, blobs))


def test_every_service_that_answers_is_ok() -> None:
    assert readiness(storage(Client(), Client(), Client())) == {
        "tables": "ok",
        "queues": "ok",
        "blobs": "ok",
    }


def test_a_table_that_answers_not_found_is_answering() -> None:
    # given a table without the probe's row (the usual case)
    tables = Client(ResourceNotFoundError("The specified resource does not exist."))
    # then the table service is up
    assert readiness(storage(tables, Client(), Client()))["tables"] == "ok"
    assert tables.calls == ["get_entity"]


def test_a_failing_service_is_named_by_its_errors_class_never_its_message() -> None:
    # given a queue service that cannot be reached (its message holds the account's URL)
    queues = Client(ServiceRequestError("https://acct.queue.core.windows.net/?sig=SECRET"))
    # when
    answer = readiness(storage(Client(), queues, Client()))
    # then
    assert answer == {
        "tables": "ok",
        "queues": "unreachable (ServiceRequestError)",
        "blobs": "ok",
    }


def test_a_service_that_hangs_is_timed_out_within_the_bound(released: threading.Event) -> None:
    # given blobs that never answer
    blobs = Client(hang=released)
    # when probed with a bound of 0.3 s
    started = time.monotonic()
    answer = readiness(storage(Client(), Client(), blobs), timeout=0.3)
    # then the answer comes within the bound, the others still probed
    assert time.monotonic() - started < 2.0
    assert answer == {"tables": "ok", "queues": "ok", "blobs": "timed out"}


def test_the_queue_probe_creates_nothing_and_says_whether_it_answered(
    released: threading.Event,
) -> None:
    # given
    up = Probed(Client(), Client(), Client())
    # when / then
    assert queue_reachable(cast(Storage, up)) is True
    assert up.unchecked == [JOBS_QUEUE] and up.queues.calls == ["get_queue_properties"]
    down = storage(Client(), Client(ConnectionError("refused")), Client())
    assert queue_reachable(down) is False
    hanging = storage(Client(), Client(hang=released), Client())
    assert queue_reachable(hanging, timeout=0.2) is False
