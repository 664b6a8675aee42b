"""Starting and stopping orchestrations from a service running in a worker thread.

The durable client (`azure.durable_functions.DurableOrchestrationClient`) is async and keeps
one HTTP session on the host's event loop, so its calls are sent to that loop from the thread
that runs the request (`shared.http.handle_async`), and the thread waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

_CALL_TIMEOUT_S = 60.0


class Orchestrations(Protocol):
    def start(self, name: str, instance_id: str, payload: dict[str, Any]) -> None: ...

    def terminate(self, instance_id: str, reason: str) -> None: ...


class DurableOrchestrations:
    """`Orchestrations` through a durable client bound to the running function."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def start(self, name: str, instance_id: str, payload: dict[str, Any]) -> None:
        self._wait(self._client.start_new(name, instance_id, payload))

    def terminate(self, instance_id: str, reason: str) -> None:
        """Stop the instance; one that already finished (410) or never started is left alone."""
        try:
            self._wait(self._client.terminate(instance_id, reason))
        except Exception as exc:  # the SDK raises a plain Exception for a 404
            if "no instance with id" not in str(exc).lower():
                raise

    def _wait(self, call: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result(_CALL_TIMEOUT_S)
