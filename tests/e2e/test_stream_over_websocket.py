"""End to end: the reference's `ws://HOST/api/v2/network/stream` under funchost, through the
Web PubSub stand-in, on Azurite: a plain WebSocket subscribes with its API key and gets its
own jobs' status changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
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
ADMIN_KEY = "qcos_admin_" + "s" * 40
TOPICS = ["job_updates", "backend_status"]


@pytest.fixture(scope="module")
def stack(azurite: Azurite) -> Iterator[tuple[FuncHost, PubSubHost]]:
    port = free_port()
    events = f"http://127.0.0.1:{port}/api/webpubsub/events"
    with PubSubHost(upstreams={"qcos": events}) as wps:
        env = {
            "AzureWebJobsStorage": azurite.connection_string,
            "QCOS_ADMIN_API_KEY": ADMIN_KEY,
            "QCOS_WEBPUBSUB_CONNECTION_STRING": wps.connection_string,
            "FUNCHOST_WEBPUBSUB_ROUTES": "api/v2/network/stream=qcos",
            "FUNCHOST_WEBPUBSUB_CONNECTION": "QCOS_WEBPUBSUB_CONNECTION_STRING",
        }
        with FuncHost(ROOT, env=env, port=port) as host:
            yield host, wps


def stream_url(host: FuncHost) -> str:
    return f"ws://127.0.0.1:{host.port}/api/v2/network/stream"


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 30) -> Any:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def subscribe(ws: aiohttp.ClientWebSocketResponse, key: str) -> None:
    await ws.send_str(json.dumps({"api_key": key, "subscribe": TOPICS}))
    assert await receive_json(ws) == {"type": "subscribed", "subscribe": TOPICS}


async def statuses_until_done(
    ws: aiohttp.ClientWebSocketResponse, job_id: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """The statuses of `job_id` up to a terminal one, and every job update seen meanwhile."""
    seen: list[dict[str, Any]] = []
    statuses: list[str] = []
    while not statuses or statuses[-1] not in ("completed", "failed", "cancelled"):
        update = await receive_json(ws, timeout=60)
        if update["type"] != "job_update":
            continue
        seen.append(update)
        if update["job_id"] == job_id:
            statuses.append(update["status"])
    return statuses, seen


async def refused(url: str, frame: str) -> tuple[dict[str, Any], int | None]:
    """The frame the stream answers `frame` with, and the close code that follows."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(frame)
        answer = await receive_json(ws)
        closing = await ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
        return answer, ws.close_code


def test_a_plain_websocket_sees_its_bell_job_go_queued_processing_completed(
    stack: tuple[FuncHost, PubSubHost],
) -> None:
    host, _ = stack
    key = new_key(host.url, ADMIN_KEY)

    async def scenario() -> tuple[list[str], list[dict[str, Any]], str]:
        async with aiohttp.ClientSession() as session, session.ws_connect(stream_url(host)) as ws:
            assert ws.protocol is None  # a plain WebSocket, no subprotocol
            # given a subscribed connection
            await subscribe(ws, key)
            # when a Bell job is submitted over HTTP
            job_id = await asyncio.to_thread(submit, host.url, key, BELL)
            statuses, seen = await statuses_until_done(ws, job_id)
            return statuses, seen, job_id

    statuses, seen, job_id = asyncio.run(scenario())

    # then its status changes arrive in order, with a timestamp each
    assert statuses == ["queued", "processing", "completed"]
    mine = [u for u in seen if u["job_id"] == job_id]
    assert all(u["timestamp"] and u["job_type"] == "job" for u in mine)
    assert [u["timestamp"] for u in mine] == sorted(u["timestamp"] for u in mine)


def test_two_users_each_see_only_their_own_jobs(stack: tuple[FuncHost, PubSubHost]) -> None:
    host, _ = stack
    alice, bob = new_key(host.url, ADMIN_KEY), new_key(host.url, ADMIN_KEY)

    async def scenario() -> tuple[set[str], set[str], str, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(stream_url(host)) as alice_ws,
            session.ws_connect(stream_url(host)) as bob_ws,
        ):
            await subscribe(alice_ws, alice)
            await subscribe(bob_ws, bob)
            alice_job = await asyncio.to_thread(submit, host.url, alice, BELL)
            bob_job = await asyncio.to_thread(submit, host.url, bob, BELL)
            _, alice_seen = await statuses_until_done(alice_ws, alice_job)
            _, bob_seen = await statuses_until_done(bob_ws, bob_job)
            # what else arrives within a moment is not the other's either
            for ws, seen in ((alice_ws, alice_seen), (bob_ws, bob_seen)):
                try:
                    while True:
                        update = await receive_json(ws, timeout=1.0)
                        if update["type"] == "job_update":
                            seen.append(update)
                except TimeoutError:
                    pass
            return (
                {u["job_id"] for u in alice_seen},
                {u["job_id"] for u in bob_seen},
                alice_job,
                bob_job,
            )

    alice_saw, bob_saw, alice_job, bob_job = asyncio.run(scenario())

    assert alice_saw == {alice_job}
    assert bob_saw == {bob_job}


@pytest.mark.parametrize(
    ("frame", "error_code"),
    [
        (json.dumps({"api_key": "qcos_live_" + "x" * 40, "subscribe": TOPICS}), "UNAUTHORIZED"),
        ("not json", "INVALID_FRAME"),
        (json.dumps({"subscribe": TOPICS}), "INVALID_FRAME"),
    ],
)
def test_a_bad_key_or_frame_gets_an_error_frame_and_a_close(
    stack: tuple[FuncHost, PubSubHost], frame: str, error_code: str
) -> None:
    host, _ = stack

    answer, code = asyncio.run(refused(stream_url(host), frame))

    assert answer["type"] == "error" and answer["error_code"] == error_code
    assert answer["detail"]
    assert code == 1000


def test_an_unknown_topic_gets_an_error_frame_and_a_close(
    stack: tuple[FuncHost, PubSubHost],
) -> None:
    host, _ = stack
    frame = json.dumps(
        {"api_key": new_key(host.url, ADMIN_KEY), "subscribe": ["job_updates", "gossip"]}
    )

    answer, code = asyncio.run(refused(stream_url(host), frame))

    assert answer["type"] == "error" and answer["error_code"] == "UNKNOWN_TOPIC"
    assert "gossip" in answer["detail"]
    assert code == 1000


def test_the_event_handler_refuses_a_cloudevent_with_a_wrong_signature(
    stack: tuple[FuncHost, PubSubHost],
) -> None:
    host, _ = stack
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "azure.webpubsub.user.message",
        "ce-source": "/hubs/qcos/client/conn1",
        "ce-id": "1",
        "ce-hub": "qcos",
        "ce-connectionId": "conn1",
        "ce-eventName": "message",
        "ce-signature": "sha256=" + "0" * 64,
        "Content-Type": "text/plain",
    }
    body = json.dumps({"api_key": new_key(host.url, ADMIN_KEY), "subscribe": TOPICS})

    answer = requests.post(
        f"{host.url}/api/webpubsub/events", data=body, headers=headers, timeout=30
    )
    unsigned = requests.post(
        f"{host.url}/api/webpubsub/events",
        data=body,
        headers={k: v for k, v in headers.items() if k != "ce-signature"},
        timeout=30,
    )

    assert answer.status_code == 401 and answer.content == b""
    assert unsigned.status_code == 401


def test_negotiate_gives_a_url_whose_connection_gets_the_users_jobs(
    stack: tuple[FuncHost, PubSubHost],
) -> None:
    host, _ = stack
    key = new_key(host.url, ADMIN_KEY)
    negotiated = requests.post(
        f"{host.url}/api/v2/network/stream/negotiate", headers={"X-API-Key": key}, timeout=30
    )
    assert negotiated.status_code == 200, negotiated.text
    url = negotiated.json()["url"]
    assert url.startswith("ws://127.0.0.1:") and "access_token=" in url

    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            job_id = await asyncio.to_thread(submit, host.url, key, BELL)
            statuses, _ = await statuses_until_done(ws, job_id)
            return statuses

    assert asyncio.run(scenario()) == ["queued", "processing", "completed"]
