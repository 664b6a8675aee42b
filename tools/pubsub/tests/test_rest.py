"""The real service SDK against the stand-in, with plain WebSocket clients (aiohttp)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from pubsubhost.testing import PubSubHost


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def _receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), timeout)


def test_client_access_token_is_a_local_jwt_for_the_hub(service, wps: PubSubHost) -> None:
    client = service("qcos")
    token = client.get_client_access_token(
        user_id="alice", groups=["jobs"], roles=["webpubsub.joinLeaveGroup"], minutes_to_expire=5
    )
    assert token["baseUrl"] == f"ws://127.0.0.1:{wps.port}/client/hubs/qcos"
    assert token["url"] == f"{token['baseUrl']}?access_token={token['token']}"
    claims = jwt.decode(
        token["token"],
        wps.access_key,
        algorithms=["HS256"],
        audience=f"http://127.0.0.1:{wps.port}/client/hubs/qcos",
    )
    assert claims["sub"] == "alice"
    assert claims["role"] == ["webpubsub.joinLeaveGroup"]
    assert claims["webpubsub.group"] == ["jobs"]
    assert claims["exp"] - claims["iat"] == 300


def test_send_to_user_and_group_reach_a_plain_websocket(service) -> None:
    client: WebPubSubServiceClient = service("bare")
    user = _user()
    url = client.get_client_access_token(user_id=user)["url"]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            assert ws.protocol is None
            await asyncio.to_thread(client.send_to_user, user, {"job": 1})
            message = await _receive(ws)
            assert message.type == aiohttp.WSMsgType.TEXT and message.data == '{"job": 1}'
            await asyncio.to_thread(client.send_to_user, user, "hi", content_type="text/plain")
            assert (await _receive(ws)).data == "hi"
            await asyncio.to_thread(
                client.send_to_user, user, b"\x00\x01", content_type="application/octet-stream"
            )
            binary = await _receive(ws)
            assert binary.type == aiohttp.WSMsgType.BINARY and binary.data == b"\x00\x01"

            group = f"g-{user}"
            assert not await asyncio.to_thread(client.group_exists, group)
            await asyncio.to_thread(client.add_user_to_group, group, user)
            assert await asyncio.to_thread(client.group_exists, group)
            assert await asyncio.to_thread(client.user_exists, user)
            await asyncio.to_thread(client.send_to_group, group, {"event": "done"})
            assert (await _receive(ws)).data == '{"event": "done"}'
            members = await asyncio.to_thread(lambda: list(client.list_connections(group=group)))
            assert [m.user_id for m in members] == [user]
            connection_id = members[0].connection_id
            assert await asyncio.to_thread(client.connection_exists, connection_id)

            await asyncio.to_thread(client.remove_user_from_group, group, user)
            assert not await asyncio.to_thread(client.group_exists, group)
            await asyncio.to_thread(client.add_connection_to_group, group, connection_id)
            await asyncio.to_thread(client.send_to_group, group, "again", content_type="text/plain")
            assert (await _receive(ws)).data == "again"
            await asyncio.to_thread(client.remove_connection_from_group, group, connection_id)
            await asyncio.to_thread(client.send_to_group, group, "gone", content_type="text/plain")
            await asyncio.to_thread(
                client.send_to_connection, connection_id, "direct", content_type="text/plain"
            )
            assert (await _receive(ws)).data == "direct"  # not "gone"

            await asyncio.to_thread(client.close_connection, connection_id, reason="bye")
            closed = await _receive(ws)
            assert closed.type == aiohttp.WSMsgType.CLOSE
            assert (closed.data, closed.extra) == (1000, "bye")
            assert not await asyncio.to_thread(client.connection_exists, connection_id)

    asyncio.run(scenario())


def test_user_group_membership_applies_to_later_connections(service) -> None:
    client: WebPubSubServiceClient = service("bare")
    user = _user()
    client.add_user_to_group(f"later-{user}", user)

    async def scenario() -> None:
        url = client.get_client_access_token(user_id=user)["url"]
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await asyncio.to_thread(client.send_to_group, f"later-{user}", {"n": 1})
            assert (await _receive(ws)).data == '{"n": 1}'
            await asyncio.to_thread(client.close_user_connections, user, reason="done")
            assert (await _receive(ws)).type == aiohttp.WSMsgType.CLOSE

    asyncio.run(scenario())


def test_token_groups_are_joined_on_connect(service) -> None:
    client: WebPubSubServiceClient = service("bare")
    group = f"token-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        url = client.get_client_access_token(groups=[group])["url"]
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await asyncio.to_thread(client.send_to_all, "everyone", content_type="text/plain")
            assert (await _receive(ws)).data == "everyone"
            await asyncio.to_thread(
                client.send_to_group, group, "members", content_type="text/plain"
            )
            assert (await _receive(ws)).data == "members"

    asyncio.run(scenario())


def test_missing_connection_is_404(service) -> None:
    with pytest.raises(ResourceNotFoundError):
        service("bare").add_connection_to_group("g", "no-such-connection")


def _rest(wps: PubSubHost, path: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        f"{wps.endpoint}{path}?api-version=2024-12-01",
        data="x",
        headers={"Content-Type": "text/plain", **headers},
        timeout=5,
    )


def _jwt(key: str, aud: str, seconds: int = 60) -> str:
    exp = datetime.now(UTC) + timedelta(seconds=seconds)
    return jwt.encode({"aud": aud, "exp": exp}, key, algorithm="HS256")


def test_rest_calls_need_a_jwt_for_their_own_url(wps: PubSubHost) -> None:
    path = "/api/hubs/bare/users/u1/:send"
    good = _jwt(wps.access_key, f"{wps.endpoint}{path}?api-version=2024-12-01")
    assert _rest(wps, path, good).status_code == 202
    assert _rest(wps, path, None).status_code == 401
    other_path = _jwt(wps.access_key, f"{wps.endpoint}/api/hubs/bare/:send")
    assert _rest(wps, path, other_path).status_code == 401
    other_host = _jwt(wps.access_key, f"http://example.com{path}")
    assert _rest(wps, path, other_host).status_code == 401
    wrong_key = _jwt("not-the-key-" + "x" * 32, f"{wps.endpoint}{path}")
    assert _rest(wps, path, wrong_key).status_code == 401
    expired = _jwt(wps.access_key, f"{wps.endpoint}{path}", seconds=-60)
    assert _rest(wps, path, expired).status_code == 401


def test_sdk_with_a_wrong_key_is_refused(wps: PubSubHost) -> None:
    wrong = wps.connection_string.replace(wps.access_key, "wrong-key-" + "x" * 32)
    client = WebPubSubServiceClient.from_connection_string(wrong, hub="bare")
    with pytest.raises(ClientAuthenticationError):
        client.send_to_all({"x": 1})


def test_endpoint_with_the_port_inside_works_too(wps: PubSubHost) -> None:
    text = f"Endpoint={wps.endpoint};AccessKey={wps.access_key};Version=1.0;"
    client = WebPubSubServiceClient.from_connection_string(text, hub="bare")
    client.send_to_all({"x": 1})
    assert (
        client.get_client_access_token()["baseUrl"] == f"ws://127.0.0.1:{wps.port}/client/hubs/bare"
    )
