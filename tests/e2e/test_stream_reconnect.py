"""End to end: a stream client across a restart of the host (funchost) misses no terminal status.

The stream's socket (`ws://HOST/api/v2/network/stream`, funchost's proxy to the Web PubSub
hub) lives only as long as the host process that proxies it: when the host stops, the client's
socket closes (1001 "the host is stopping" after the host's grace period; no close frame at
all, 1006, when it dies). Nothing is replayed: a status change published while a client had no
subscribed connection is not delivered to it later. So a client must follow this rule:

1. Connect and send the subscription frame (`{"api_key": ..., "subscribe": [...]}`) as the
   first frame; the stream is live once `{"type": "subscribed"}` comes back.
2. After every `subscribed` (the first one and each one after a reconnect), re-read over HTTP
   every job it still waits for: `GET /api/v1/status/{job_id}` for a v1 job,
   `GET /api/v2/network/execute/{job_id}` for a network job. Re-read after the acknowledgement,
   not before: a change before it is in the re-read, a change after it comes on the stream.
3. When the socket closes, whatever the code (1001, 1006, ...), or a connection attempt fails
   (refused while the host is down, 502/503 while it starts or stops): wait and try again, with
   a growing delay (here 0.2 s doubling up to 2 s), until the host answers; then 1 and 2 again.
4. A terminal status (`completed`, `failed`, `cancelled`) is final, whichever way it came:
   ignore a later non-terminal update of that job (the stream and a re-read may report the
   same change; a job cut off by the stop runs again, `processing` again, before it ends).
5. An `{"type": "error"}` frame answers a refused subscription (bad key, frame or topic) and
   is followed by a close: fix the subscription instead of reconnecting.

`StreamClient` below is that rule in aiohttp. The stack is the one `make run` starts (Azurite,
`pubsubhost` for Web PubSub, funchost with `FUNCHOST_WEBPUBSUB_ROUTES`), started through the test
helpers so that funchost can be stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from funchost.testing import Azurite, FuncHost, free_port
from pubsubhost.testing import PubSubHost
from tests.circuits import BELL
from tests.e2e.gateway import new_key, submit

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "qcos_admin_" + "c" * 40
STREAM_PATH = "/api/v2/network/stream"
TOPICS = ["job_updates"]
TERMINAL = frozenset({"completed", "failed", "cancelled"})
RETRY_FIRST_S, RETRY_MOST_S = 0.2, 2.0
WAIT_S = 60.0


def long_circuit(salt: int) -> str:
    """22 qubits, six entangling layers with T gates: several seconds on the statevector
    simulator here, longer than the host's 2 s grace period on a stop."""
    n, body = 22, ""
    for layer in range(6):
        body += "".join(f"h q[{i}];\nt q[{i}];\n" for i in range(n))
        body += "".join(f"cx q[{i}],q[{(i + 1 + layer) % n}];\n" for i in range(n))
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n'
        f"rz({salt / 1000}) q[0];\n{body}measure q -> c;\n"
    )


class SubscriptionRefused(Exception):
    """The stream answered the subscription with an error frame (rule 5)."""


@dataclass
class StreamClient:
    """A client of the stream that follows the module's rule.

    `watch(job_id)` adds a job it waits for; `status` is the last status known of each job,
    `seen` every change as it learned it, with where from ("stream" or "reread").
    """

    base_url: str  # http://HOST:PORT
    api_key: str
    status: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    subscriptions: int = 0  # acknowledged subscriptions: 1, then one per reconnect
    closes: list[int | None] = field(default_factory=list)  # each socket's close code
    failed_attempts: int = 0
    task: asyncio.Task[None] | None = None  # `run()`, while `following` runs it
    _watched: dict[str, bool] = field(default_factory=dict)  # job id -> is a network job

    @property
    def stream_url(self) -> str:
        return "ws" + self.base_url[len("http") :] + STREAM_PATH

    def watch(self, job_id: str, *, network: bool = False) -> None:
        self._watched[job_id] = network

    def waiting_for(self) -> list[str]:
        return [j for j in self._watched if self.status.get(j) not in TERMINAL]

    async def run(self) -> None:
        """Stay subscribed until cancelled (rule 3); raises `SubscriptionRefused` (rule 5)."""
        delay = RETRY_FIRST_S
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self._connection(session)
                    delay = RETRY_FIRST_S
                except (aiohttp.ClientError, OSError, TimeoutError):
                    self.failed_attempts += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MOST_S)

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(self.stream_url) as ws:
            # rule 1: the subscription first, live once acknowledged
            await ws.send_str(json.dumps({"api_key": self.api_key, "subscribe": TOPICS}))
            ack = await ws.receive(timeout=30)
            if ack.type != aiohttp.WSMsgType.TEXT:
                self.closes.append(ws.close_code)
                return
            frame = json.loads(ack.data)
            if frame.get("type") == "error":
                raise SubscriptionRefused(frame)
            assert frame == {"type": "subscribed", "subscribe": TOPICS}, frame
            self.subscriptions += 1
            # rule 2: what changed while there was no subscription
            for job_id in self.waiting_for():
                await self._reread(session, job_id)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    update = json.loads(message.data)
                    if update.get("type") == "job_update":
                        self._learn(update["job_id"], update["status"], "stream")
            self.closes.append(ws.close_code)

    async def _reread(self, session: aiohttp.ClientSession, job_id: str) -> None:
        network = self._watched[job_id]
        path = f"/api/v2/network/execute/{job_id}" if network else f"/api/v1/status/{job_id}"
        async with session.get(self.base_url + path, headers={"X-API-Key": self.api_key}) as answer:
            answer.raise_for_status()
            body = await answer.json()
        self._learn(job_id, body["data"]["status"] if network else body["status"], "reread")

    def _learn(self, job_id: str, status: str, source: str) -> None:
        if self.status.get(job_id) in TERMINAL:  # rule 4
            return
        if self.status.get(job_id) != status or source == "stream":
            self.seen.append((job_id, status, source))
        self.status[job_id] = status

    def statuses(self, job_id: str) -> list[str]:
        return [status for job, status, _ in self.seen if job == job_id]

    async def wait_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            if self.task is not None and self.task.done():
                self.task.result()  # its exception, if it raised
                raise AssertionError(f"{what}: the client stopped: {self}")
            assert time.monotonic() < deadline, f"{what}: not within {WAIT_S:g}s: {self}"
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[dict[str, str], int]]:
    """The settings of a host on `port` (its own Azurite, a Web PubSub stand-in sending its
    events to that port): each test starts and stops funchost itself."""
    port = free_port()
    events = f"http://127.0.0.1:{port}/api/webpubsub/events"
    with Azurite() as storage, PubSubHost(upstreams={"qcos": events}) as wps:
        env = {
            "AzureWebJobsStorage": storage.connection_string,
            "QCOS_ADMIN_API_KEY": ADMIN_KEY,
            "QCOS_WEBPUBSUB_CONNECTION_STRING": wps.connection_string,
            "FUNCHOST_WEBPUBSUB_ROUTES": "api/v2/network/stream=qcos",
            "FUNCHOST_WEBPUBSUB_CONNECTION": "QCOS_WEBPUBSUB_CONNECTION_STRING",
            # a message whose host went away comes back within 4 s (not 30)
            "FUNCHOST_QUEUE_LEASE_SECONDS": "4",
        }
        yield env, port


@pytest.fixture
def host(stack: tuple[dict[str, str], int]) -> Iterator[FuncHost]:
    env, port = stack
    running = FuncHost(ROOT, env=env, port=port)
    with running:
        yield running


def job_view(url: str, key: str, job_id: str) -> Any:
    answer = requests.get(f"{url}/api/v1/status/{job_id}", headers={"X-API-Key": key}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@contextlib.asynccontextmanager
async def following(client: StreamClient) -> Any:
    """`client` running in the background; its failure fails the block."""
    task = client.task = asyncio.create_task(client.run())
    try:
        yield task
        assert not task.done(), task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_after_a_restart_the_client_reconnects_and_gets_the_terminal_status_and_new_jobs(
    host: FuncHost,
) -> None:
    key = new_key(host.url, ADMIN_KEY)
    client = StreamClient(host.url, key)

    async def scenario() -> tuple[str, str]:
        async with following(client):
            await client.wait_until(lambda: client.subscriptions == 1, "subscribed")
            # given a job that is running when the host stops
            long_job = await asyncio.to_thread(submit, host.url, key, long_circuit(1), shots=200)
            client.watch(long_job)
            await client.wait_until(
                lambda: client.status.get(long_job) == "processing", "the long job runs"
            )
            # when the host stops and starts again on the same port
            await asyncio.to_thread(host.stop)
            await client.wait_until(lambda: client.closes != [], "the socket closes")
            await asyncio.to_thread(host.start)
            # then the client subscribes again and ends up with the long job's end
            await client.wait_until(lambda: client.subscriptions == 2, "subscribed again")
            await client.wait_until(
                lambda: client.status.get(long_job) in TERMINAL, "the long job's end"
            )
            # and a job submitted after the restart is followed on the stream
            new_job = await asyncio.to_thread(submit, host.url, key, BELL, shots=200)
            client.watch(new_job)
            await client.wait_until(lambda: client.status.get(new_job) in TERMINAL, "new job")
            return long_job, new_job

    long_job, new_job = asyncio.run(scenario())

    assert client.closes[0] == 1001  # "the host is stopping"
    assert client.status[long_job] == "completed", client.seen
    assert client.statuses(long_job)[-1] == "completed"
    # the long job was cut off by the stop and ran again after the restart
    assert job_view(host.url, key, long_job)["attempts"] >= 2
    assert [(s, src) for j, s, src in client.seen if j == new_job] == [
        ("queued", "stream"),
        ("processing", "stream"),
        ("completed", "stream"),
    ]


def test_a_job_that_ends_while_the_client_is_away_is_found_by_the_reread(
    host: FuncHost, stack: tuple[dict[str, str], int]
) -> None:
    env, _ = stack
    key = new_key(host.url, ADMIN_KEY)
    client = StreamClient(host.url, key)

    async def scenario() -> str:
        async with following(client):
            await client.wait_until(lambda: client.subscriptions == 1, "subscribed")
            # given a job running on the client's host
            job_id = await asyncio.to_thread(submit, host.url, key, long_circuit(2), shots=200)
            client.watch(job_id)
            await client.wait_until(lambda: client.status.get(job_id) == "processing", "runs")
            # when that host dies, and another instance (same storage, same hub) finishes the
            # job while the client's host is down
            await asyncio.to_thread(host.kill)
            await client.wait_until(lambda: client.closes != [], "the socket closes")
            other = FuncHost(ROOT, env=env)
            await asyncio.to_thread(other.start)
            try:
                deadline = time.monotonic() + WAIT_S
                while True:
                    view = await asyncio.to_thread(job_view, other.url, key, job_id)
                    if view["status"] in TERMINAL:
                        break
                    assert time.monotonic() < deadline, f"the other instance did not end it: {view}"
                    await asyncio.sleep(0.2)
            finally:
                await asyncio.to_thread(other.close)
            assert client.subscriptions == 1 and client.status[job_id] == "processing"
            # and the client's host comes back
            await asyncio.to_thread(host.start)
            # then the client reconnects and learns the job's end from its re-read
            await client.wait_until(lambda: client.status.get(job_id) in TERMINAL, "its end")
            return job_id

    job_id = asyncio.run(scenario())

    assert client.closes[0] == 1006  # the host died: no close frame
    assert client.subscriptions == 2
    assert client.seen[-1] == (job_id, "completed", "reread")
    assert ("completed", "stream") not in [(s, src) for j, s, src in client.seen if j == job_id]
