"""`shared.orchestration.client.DurableOrchestrations`: a worker thread starts and stops
orchestrations through the durable client's own event loop, and waits for the answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shared.orchestration.client import DurableOrchestrations


class DurableClient:
    """The durable client's two calls; each records the loop it ran on."""

    def __init__(self, terminate_error: Exception | None = None) -> None:
        self.started: list[tuple[str, str, dict[str, Any]]] = []
        self.terminated: list[tuple[str, str]] = []
        self.loops: set[asyncio.AbstractEventLoop] = set()
        self._terminate_error = terminate_error

    async def start_new(self, name: str, instance_id: str, payload: dict[str, Any]) -> str:
        self.loops.add(asyncio.get_running_loop())
        self.started.append((name, instance_id, payload))
        return instance_id

    async def terminate(self, instance_id: str, reason: str) -> None:
        self.loops.add(asyncio.get_running_loop())
        if self._terminate_error is not None:
            raise self._terminate_error
        self.terminated.append((instance_id, reason))


@pytest.fixture
def host_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The host's event loop, running in a thread of its own as the worker's does."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_an_orchestration_is_started_on_the_hosts_loop_with_its_payload(
    host_loop: asyncio.AbstractEventLoop,
) -> None:
    # given
    client = DurableClient()
    orchestrations = DurableOrchestrations(client, host_loop)
    # when a request's thread starts one
    orchestrations.start("network_job", "net-1", {"job_id": "net-1", "runs": 3})
    # then it ran on the host's loop, and had run when `start` returned
    assert client.started == [("network_job", "net-1", {"job_id": "net-1", "runs": 3})]
    assert client.loops == {host_loop}


def test_terminating_an_instance_passes_the_reason(host_loop: asyncio.AbstractEventLoop) -> None:
    client = DurableClient()
    DurableOrchestrations(client, host_loop).terminate("net-1", "cancelled by the user")
    assert client.terminated == [("net-1", "cancelled by the user")]


def test_terminating_an_instance_that_does_not_exist_is_not_an_error(
    host_loop: asyncio.AbstractEventLoop,
) -> None:
    # given the SDK's plain Exception for a 404
    client = DurableClient(Exception("No instance with ID 'net-9' found."))
    # when / then
    DurableOrchestrations(client, host_loop).terminate("net-9", "cancelled")


def test_any_other_failure_to_terminate_reaches_the_caller(
    host_loop: asyncio.AbstractEventLoop,
) -> None:
    client = DurableClient(ConnectionError("the host's durable endpoint is down"))
    with pytest.raises(ConnectionError):
        DurableOrchestrations(client, host_loop).terminate("net-1", "cancelled")
