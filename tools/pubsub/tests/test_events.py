"""CloudEvents to the event handler: headers, signature, blocking answers, refusals."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from typing import Any

import aiohttp
import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from pubsubhost.testing import PubSubHost


async def _receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), timeout)


def _expected_signature(key: str, connection_id: str) -> str:
    return "sha256=" + hmac.new(key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()


def test_a_plain_client_s_life_as_the_handler_sees_it(
    service, wps: PubSubHost, upstream: Any
) -> None:
    client: WebPubSubServiceClient = service("qcos")
    user = f"u-{uuid.uuid4().hex[:8]}"
    url = client.get_client_access_token(user_id=user)["url"] + "&extra=1"
    upstream.reply("message", 200, b"pong", "text/plain")

    async def scenario() -> str:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str("ping")
            reply = await _receive(ws)
            assert (reply.type, reply.data) == (aiohttp.WSMsgType.TEXT, "pong")
            await ws.send_bytes(b"\x01\x02")
            assert (await _receive(ws)).data == "pong"
            members = await asyncio.to_thread(client.user_exists, user)
            assert members
        return ""

    asyncio.run(scenario())
    connects = [
        r for r in upstream.events(event="connect") if r["headers"].get("ce-userId") == user
    ]
    assert len(connects) == 1
    connect = connects[0]
    headers = connect["headers"]
    connection_id = headers["ce-connectionId"]
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-type"] == "azure.webpubsub.sys.connect"
    assert headers["ce-source"] == f"/hubs/qcos/client/{connection_id}"
    assert headers["ce-hub"] == "qcos"
    assert headers["ce-eventName"] == "connect"
    assert headers["ce-id"] and headers["ce-time"].endswith("Z")
    assert headers["ce-signature"] == _expected_signature(wps.access_key, connection_id)
    assert headers["WebHook-Request-Origin"] == "127.0.0.1"
    assert headers["Content-Type"].startswith("application/json")
    assert connect["path"] == "/events/connect"
    body = json.loads(connect["body"])
    assert body["claims"]["sub"] == [user]
    assert body["query"] == {"extra": ["1"]}  # the token is not passed on
    assert body["subprotocols"] == [] and "clientCertificates" in body

    validation = [r for r in upstream.requests if r["method"] == "OPTIONS"]
    assert validation and validation[0]["path"] == "/events/validate"
    assert validation[0]["headers"]["WebHook-Request-Origin"] == "127.0.0.1"

    upstream.wait_for(connection_id, "connected")
    text, binary = upstream.events(connection_id, "message")
    assert text["headers"]["ce-type"] == "azure.webpubsub.user.message"
    assert text["headers"]["Content-Type"].startswith("text/plain")
    assert text["body"] == b"ping"
    assert binary["headers"]["Content-Type"] == "application/octet-stream"
    assert binary["body"] == b"\x01\x02"
    disconnected = upstream.wait_for(connection_id, "disconnected")
    assert disconnected["headers"]["ce-type"] == "azure.webpubsub.sys.disconnected"
    assert "reason" in json.loads(disconnected["body"])
    for event in upstream.events(connection_id):
        assert event["headers"]["ce-signature"] == _expected_signature(
            wps.access_key, connection_id
        )
        assert event["headers"]["ce-userId"] == user


def test_connect_answer_sets_user_groups_and_state(service, upstream: Any) -> None:
    client: WebPubSubServiceClient = service("qcos")
    user = f"from-handler-{uuid.uuid4().hex[:8]}"
    group = f"grp-{user}"
    upstream.reply(
        "connect",
        200,
        json.dumps({"userId": user, "groups": [group]}).encode(),
        headers={"ce-connectionState": "c3RhdGU="},
    )
    url = client.get_client_access_token()["url"]  # anonymous token: the handler names the user

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await asyncio.to_thread(client.send_to_group, group, "in", content_type="text/plain")
            assert (await _receive(ws)).data == "in"
            await asyncio.to_thread(client.send_to_user, user, "you", content_type="text/plain")
            assert (await _receive(ws)).data == "you"
            await ws.send_str("hello")
            await asyncio.sleep(0.2)

    asyncio.run(scenario())
    message = [m for m in upstream.events(event="message") if m["headers"].get("ce-userId") == user]
    assert message and message[0]["headers"]["ce-connectionState"] == "c3RhdGU="


def test_connect_refused_by_the_handler_is_the_client_s_answer(service, upstream: Any) -> None:
    upstream.reply("connect", 401, b"no entry", "text/plain")
    url = service("qcos").get_client_access_token(user_id="mallory")["url"]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 401

    asyncio.run(scenario())
    connects = [
        r for r in upstream.events(event="connect") if r["headers"].get("ce-userId") == "mallory"
    ]
    assert connects
    connection_id = connects[0]["headers"]["ce-connectionId"]
    assert not upstream.events(connection_id, "connected")
    assert not upstream.events(connection_id, "disconnected")


def test_a_failing_message_handler_drops_the_connection(service, upstream: Any) -> None:
    upstream.reply("message", 500)
    url = service("qcos").get_client_access_token(user_id="crash")["url"]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str("boom")
            closed = await _receive(ws)
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1011

    asyncio.run(scenario())


def test_a_handler_failing_the_abuse_check_gets_no_events(upstream: Any) -> None:
    config = {
        "strict": {
            "eventHandlers": [
                {"urlTemplate": upstream.url + "/events/{event}", "systemEvents": ["connect"]}
            ]
        }
    }
    upstream.allowed_origin = "other.example"
    with PubSubHost(hub_config=config) as host:
        client = WebPubSubServiceClient.from_connection_string(host.connection_string, "strict")
        url = client.get_client_access_token(user_id="strict-user")["url"]

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(url)
                assert refused.value.status == 500

        asyncio.run(scenario())
        assert "does not allow" in host.output()
    assert not [
        r
        for r in upstream.events(event="connect")
        if r["headers"].get("ce-userId") == "strict-user"
    ]
