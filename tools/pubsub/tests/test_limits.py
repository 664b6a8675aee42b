"""Refused connections and the bounds: tokens, frame size, message rate, connection count."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import aiohttp
import jwt
import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from pubsubhost.testing import PubSubHost, free_port


def _status(url: str, **kwargs: object) -> int | None:
    """The handshake's HTTP status when refused, None when it connected."""

    async def attempt() -> int | None:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, **kwargs):  # type: ignore[arg-type]
                    return None
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    return asyncio.run(attempt())


def _token(key: str, aud: str, seconds: int = 60, **claims: object) -> str:
    payload = {"aud": aud, "exp": datetime.now(UTC) + timedelta(seconds=seconds), **claims}
    return jwt.encode(payload, key, algorithm="HS256")


def test_bad_and_expired_tokens_are_refused(wps: PubSubHost) -> None:
    base = f"ws://127.0.0.1:{wps.port}/client/hubs/bare"
    aud = f"{wps.endpoint}/client/hubs/bare"
    assert _status(f"{base}?access_token={_token(wps.access_key, aud)}") is None
    assert _status(base) == 401  # no token, and the hub does not allow anonymous clients
    assert _status(f"{base}?access_token=not-a-jwt") == 401
    assert _status(f"{base}?access_token={_token(wps.access_key, aud, seconds=-60)}") == 401
    assert _status(f"{base}?access_token={_token('x' * 40, aud)}") == 401
    other_hub = _token(wps.access_key, f"{wps.endpoint}/client/hubs/qcos")
    assert _status(f"{base}?access_token={other_hub}") == 401
    header = {"Authorization": f"Bearer {_token(wps.access_key, aud)}"}
    assert _status(base, headers=header) is None
    assert _status(f"ws://127.0.0.1:{wps.port}/client/hubs/9bad") == 400


def test_frames_over_the_limit_and_floods_are_closed(wps: PubSubHost) -> None:
    service = WebPubSubServiceClient.from_connection_string(wps.connection_string, hub="bare")
    url = service.get_client_access_token(user_id="flood")["url"]

    async def scenario() -> tuple[int | None, int | None]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                await ws.send_bytes(b"x" * (1024 * 1024 + 1))
                big = await asyncio.wait_for(ws.receive(), 5)
            async with session.ws_connect(url) as ws:
                for _ in range(200):
                    try:
                        await ws.send_str("spam")
                    except aiohttp.ClientConnectionResetError:
                        break  # closed by the service while still sending
                flood = await asyncio.wait_for(ws.receive(), 5)
                while flood.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    flood = await asyncio.wait_for(ws.receive(), 5)
                return big.data, ws.close_code

    big, flood = asyncio.run(scenario())
    assert big == 1009
    assert flood == 1008


def test_connections_over_the_limit_get_429() -> None:
    with PubSubHost(extra_args=["--max-connections", "1"], hub_config={"h": {}}) as host:
        service = WebPubSubServiceClient.from_connection_string(host.connection_string, hub="h")
        url = service.get_client_access_token()["url"]

        async def scenario() -> int | None:
            async with aiohttp.ClientSession() as session, session.ws_connect(url):
                try:
                    await session.ws_connect(url)
                except aiohttp.WSServerHandshakeError as error:
                    return error.status
                return None

        assert asyncio.run(scenario()) == 429


def test_cli_prints_the_connection_string_and_refuses_bad_settings() -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "pubsubhost",
        "start",
        "--port",
        str(port),
        "--access-key",
        "k" * 44,
        "--upstream",
        "qcos=http://127.0.0.1:1/api/{event}",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(3)]
        finally:
            process.terminate()
            process.wait(10)
    assert lines[-1].strip() == (
        f"ConnectionString: Endpoint=http://127.0.0.1;Port={port};AccessKey={'k' * 44};Version=1.0;"
    )
    bad = subprocess.run(
        [sys.executable, "-m", "pubsubhost", "--upstream", "no-equals-sign"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "--upstream wants HUB=" in bad.stderr


@pytest.mark.parametrize("port_form", ["Port=", "inside"])
def test_both_connection_string_forms_reach_the_service(wps: PubSubHost, port_form: str) -> None:
    text = (
        wps.connection_string
        if port_form == "Port="
        else (f"Endpoint={wps.endpoint};AccessKey={wps.access_key};Version=1.0;")
    )
    service = WebPubSubServiceClient.from_connection_string(text, hub="bare")
    assert not service.user_exists("nobody")
