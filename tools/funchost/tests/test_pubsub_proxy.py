"""WebSocket paths proxied to a Web PubSub hub: the minted token, frames and closes both ways,
and a refused handshake; against the pubsubhost stand-in, driven by the service SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

import aiohttp
import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from funchost.pubsub_proxy import PubSubProxy, ServiceEndpoint
from funchost.settings import ConfigError
from pubsubhost.auth import verify_client_token
from pubsubhost.testing import PubSubHost

if TYPE_CHECKING:
    from conftest import AppRunner


@pytest.fixture(scope="module")
def hub() -> Iterator[PubSubHost]:
    with PubSubHost() as running:
        yield running


def proxied(run_app: AppRunner, connection_string: str) -> str:
    app = run_app.start(
        "http",
        settings={
            "FUNCHOST_WEBPUBSUB_ROUTES": "live/feed=%FeedHub%",
            "FeedHub": "chat",
            "FUNCHOST_WEBPUBSUB_CONNECTION": "FeedConnection",
            "FeedConnection": connection_string,
        },
    )
    return "ws" + app.url[4:] + "/live/feed"


def test_the_minted_token_is_a_client_token_of_no_user_for_the_hub() -> None:
    key = "k" * 32
    service = ServiceEndpoint.parse(f"Endpoint=http://127.0.0.1;Port=7080;AccessKey={key};")

    identity = verify_client_token(service.token("chat"), key, "chat", {"127.0.0.1:7080"})

    assert service.client_url("chat") == "ws://127.0.0.1:7080/client/hubs/chat"
    assert identity.user_id is None and not identity.roles and not identity.groups


def test_routes_without_a_connection_string_are_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="WebPubSubConnectionString"):
        PubSubProxy.from_settings({"FUNCHOST_WEBPUBSUB_ROUTES": "live=chat"})
    assert PubSubProxy.from_settings({}) is None


def test_frames_from_the_service_reach_the_client_and_its_close_passes_through(
    run_app: AppRunner, hub: PubSubHost
) -> None:
    url = proxied(run_app, hub.connection_string)
    service = WebPubSubServiceClient.from_connection_string(hub.connection_string, hub="chat")

    async def scenario() -> tuple[str, int | None]:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            assert ws.protocol is None
            for _ in range(100):  # until the hub has the connection
                await asyncio.to_thread(service.send_to_all, "hello", content_type="text/plain")
                try:
                    message = await ws.receive(timeout=0.1)
                    break
                except TimeoutError:
                    continue
            assert message.type == aiohttp.WSMsgType.TEXT
            await asyncio.to_thread(service.close_all_connections, reason="bye")
            closing = await ws.receive(timeout=10)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            return str(message.data), ws.close_code

    text, code = asyncio.run(scenario())

    assert text == "hello"
    assert code == 1000


def test_a_handshake_the_hub_refuses_is_answered_with_its_status(
    run_app: AppRunner, hub: PubSubHost
) -> None:
    wrong_key = hub.connection_string.replace(hub.access_key, "not-the-key")
    url = proxied(run_app, wrong_key)

    async def scenario() -> int:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            return refused.value.status

    assert asyncio.run(scenario()) == 401


def test_a_client_that_sends_nothing_is_closed_after_the_first_frame_wait(
    run_app: AppRunner, hub: PubSubHost
) -> None:
    app = run_app.start(
        "http",
        settings={
            "FUNCHOST_WEBPUBSUB_ROUTES": "live/feed=chat",
            "WebPubSubConnectionString": hub.connection_string,
            "FUNCHOST_WEBPUBSUB_FIRST_FRAME_SECONDS": "0.5",
        },
    )
    url = "ws" + app.url[4:] + "/live/feed"

    async def scenario() -> tuple[int | None, str, bool]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as silent:
                closing = await silent.receive(timeout=10)
                assert closing.type == aiohttp.WSMsgType.CLOSE
                silent_code, reason = silent.close_code, str(closing.extra)
            async with session.ws_connect(url) as talking:
                await talking.send_str("hello")  # the hub has no handler: nothing comes back
                await asyncio.sleep(1.5)
                return silent_code, reason, talking.closed

    silent_code, reason, talking_closed = asyncio.run(scenario())

    assert silent_code == 1008 and reason == "no frame within 0.5 s"
    assert not talking_closed  # a client that spoke stays connected


def test_a_first_frame_wait_that_is_not_a_number_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="FIRST_FRAME_SECONDS"):
        PubSubProxy.from_settings(
            {
                "FUNCHOST_WEBPUBSUB_ROUTES": "live=chat",
                "WebPubSubConnectionString": "Endpoint=http://127.0.0.1;AccessKey=k;",
                "FUNCHOST_WEBPUBSUB_FIRST_FRAME_SECONDS": "soon",
            }
        )
