"""Storage queue triggers and queue output bindings.

Behaves as the Functions host does: batches of `batchSize`, a new batch when in-flight
messages drop to `newBatchThreshold`, exponential polling back-off from 100 ms to
`maxPollingInterval`, retries after `visibilityTimeout`, and `<queue>-poison` after
`maxDequeueCount` deliveries. Messages being processed are leased and the lease is
renewed, so a killed host's messages reappear once their lease runs out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import meta

from .indexing import Binding, FunctionSpec
from .invoker import Invoker, decode
from .settings import QueueOptions
from .storage import resolve_account

log = logging.getLogger("funchost")

MIN_POLL = 0.1


def encode_body(data: str | bytes, encoding: str) -> str:
    """The text stored in the queue for a message body."""
    if encoding == "base64":
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return base64.b64encode(raw).decode("ascii")
    return data if isinstance(data, str) else data.decode("utf-8")


def decode_body(content: str, encoding: str) -> str:
    """The message body a function sees; raises ValueError on a malformed base64 body."""
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"message is not valid base64 UTF-8 text: {exc}") from exc
    return content


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def ensure_queue(client: Any) -> None:
    try:
        await client.create_queue()
    except ResourceExistsError:
        pass


class QueueWakeups:
    """Lets a queue output wake this host's listener on the same queue at once."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, queue: str) -> asyncio.Event:
        return self._events.setdefault(queue.lower(), asyncio.Event())

    def notify(self, queue: str) -> None:
        event = self._events.get(queue.lower())
        if event is not None:
            event.set()


class QueueSink:
    """Writes `func.Out` and `$return` values of `queue` bindings."""

    def __init__(self, options: QueueOptions, wakeups: QueueWakeups) -> None:
        self.options = options
        self.wakeups = wakeups
        self._clients: dict[tuple[str, str], Any] = {}

    def _client(self, binding: Binding) -> Any:
        queue = str(binding.get("queueName", "")).lower()
        connection = str(binding.get("connection") or "")
        key = (connection, queue)
        if key not in self._clients:
            self._clients[key] = resolve_account(connection).queue_client(queue)
        return self._clients[key]

    async def write(self, binding: Binding, datum: meta.Datum) -> None:
        client = self._client(binding)
        bodies = _bodies(datum)
        for body in bodies:
            content = encode_body(body, self.options.message_encoding)
            try:
                await client.send_message(content)
            except ResourceNotFoundError:
                await ensure_queue(client)
                await client.send_message(content)
        if bodies:
            self.wakeups.notify(str(binding.get("queueName", "")))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


def _bodies(datum: meta.Datum) -> list[str | bytes]:
    if datum.type in ("string", "bytes"):
        return [datum.value]
    if datum.type == "json":
        value = json.loads(datum.value)
        items = value if isinstance(value, list) else [value]
        return [item["body"] if isinstance(item, dict) else str(item) for item in items]
    raise ValueError(f"unsupported queue output of type {datum.type!r}")


class QueueListener:
    """Polls one trigger's queue and runs its function for each message."""

    def __init__(
        self,
        spec: FunctionSpec,
        options: QueueOptions,
        invoker: Invoker,
        wakeups: QueueWakeups,
        lease_seconds: float = 30.0,
    ) -> None:
        self.spec = spec
        self.options = options
        self.invoker = invoker
        self.queue = str(spec.trigger.get("queueName", "")).lower()
        self.account = resolve_account(str(spec.trigger.get("connection") or ""))
        self.wake = wakeups.event(self.queue)
        self.lease = lease_seconds
        self.lease_whole = max(1, math.ceil(lease_seconds))  # the service takes whole seconds
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._slot = asyncio.Event()

    async def run(self) -> None:
        client = self.account.queue_client(self.queue)
        poison = self.account.queue_client(f"{self.queue}-poison")
        await ensure_queue(client)
        delay = MIN_POLL
        try:
            while not self.stopping.is_set():
                if len(self.tasks) > self.options.new_batch_threshold:
                    self._slot.clear()
                    await self._wait(self._slot, None)
                    continue
                try:
                    messages = [
                        m
                        async for m in client.receive_messages(
                            messages_per_page=self.options.batch_size,
                            max_messages=self.options.batch_size,
                            visibility_timeout=self.lease_whole,
                        )
                    ]
                except Exception as exc:  # storage down: keep polling, as the host does
                    log.warning("queue %s: receive failed (%s); retrying", self.queue, exc)
                    messages = []
                if not messages:
                    self.wake.clear()
                    await self._wait(self.wake, delay)
                    delay = min(delay * 2, max(self.options.max_polling_interval, MIN_POLL))
                    continue
                delay = MIN_POLL
                for message in messages:
                    task = asyncio.create_task(self._process(client, poison, message))
                    self.tasks.add(task)
                    task.add_done_callback(self._done)
        except asyncio.CancelledError:
            # The host's grace period is over: cut the invocations off. Their messages are
            # not deleted and come back once their lease runs out.
            for task in self.tasks:
                task.cancel()
            raise
        finally:
            try:
                if self.tasks:
                    await asyncio.gather(*self.tasks, return_exceptions=True)
            finally:
                await client.close()
                await poison.close()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._slot.set()

    async def _wait(self, event: asyncio.Event, timeout: float | None) -> None:
        stop = asyncio.create_task(self.stopping.wait())
        other = asyncio.create_task(event.wait())
        done, pending = await asyncio.wait(
            {stop, other}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def _process(self, client: Any, poison: Any, message: Any) -> None:
        max_dequeue = self.options.max_dequeue_count
        if message.dequeue_count > max_dequeue:
            await self._to_poison(client, poison, message, "dequeue count above maxDequeueCount")
            return
        try:
            body = decode_body(message.content, self.options.message_encoding)
        except ValueError as exc:
            await self._to_poison(client, poison, message, str(exc))
            return
        metadata = {
            "Id": meta.Datum(message.id, "string"),
            "DequeueCount": meta.Datum(json.dumps(message.dequeue_count), "json"),
            "InsertionTime": meta.Datum(_iso(message.inserted_on), "string"),
            "ExpirationTime": meta.Datum(_iso(message.expires_on), "string"),
            "NextVisibleTime": meta.Datum(_iso(message.next_visible_on), "string"),
            "PopReceipt": meta.Datum(message.pop_receipt, "string"),
        }
        try:
            value = decode(self.spec.trigger_type, meta.Datum(body, "string"), metadata)
        except Exception as exc:  # a payload the converter cannot read is a poison pill
            await self._to_poison(client, poison, message, f"cannot decode the message: {exc}")
            return
        receipt = {"pop": message.pop_receipt}
        renew = asyncio.create_task(self._renew(client, message, receipt))
        try:
            outcome = await self.invoker.invoke(
                self.spec, value, reason=f"New queue message detected on '{self.queue}'."
            )
        finally:
            renew.cancel()
            await asyncio.gather(renew, return_exceptions=True)
        try:
            if outcome.ok:
                await client.delete_message(message.id, receipt["pop"])
            elif message.dequeue_count >= max_dequeue:
                await self._to_poison(
                    client, poison, message, "failed on its last delivery", receipt["pop"]
                )
            else:
                await client.update_message(
                    message.id,
                    receipt["pop"],
                    visibility_timeout=int(self.options.visibility_timeout),
                )
        except ResourceNotFoundError:
            log.warning(
                "queue %s: message %s lease was lost; it will be delivered again",
                self.queue,
                message.id,
            )

    async def _renew(self, client: Any, message: Any, receipt: dict[str, str]) -> None:
        while True:
            await asyncio.sleep(self.lease / 2)
            updated = await client.update_message(
                message.id, receipt["pop"], visibility_timeout=self.lease_whole
            )
            receipt["pop"] = updated.pop_receipt

    async def _to_poison(
        self, client: Any, poison: Any, message: Any, why: str, pop_receipt: str | None = None
    ) -> None:
        log.warning(
            "queue %s: message %s moved to %s-poison (%s)", self.queue, message.id, self.queue, why
        )
        try:
            await poison.send_message(message.content)
        except ResourceNotFoundError:
            await ensure_queue(poison)
            await poison.send_message(message.content)
        await client.delete_message(message.id, pop_receipt or message.pop_receipt)
