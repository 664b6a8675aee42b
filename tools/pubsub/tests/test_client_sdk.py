"""`azure-messaging-webpubsubclient` (both JSON subprotocols) against the stand-in."""

from __future__ import annotations

import json
import queue
import uuid
from typing import Any

import pytest
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    SendMessageError,
    WebPubSubDataType,
    WebPubSubProtocolType,
)
from azure.messaging.webpubsubservice import WebPubSubServiceClient

PROTOCOLS = [WebPubSubProtocolType.JSON_RELIABLE, WebPubSubProtocolType.JSON]


def _client(
    service: WebPubSubServiceClient, protocol: WebPubSubProtocolType, **token: Any
) -> tuple[WebPubSubClient, queue.Queue[tuple[str, Any]]]:
    """An opened client whose callbacks land in a queue as (kind, args)."""
    credential = WebPubSubClientCredential(
        client_access_url_provider=lambda: service.get_client_access_token(**token)["url"]
    )
    client = WebPubSubClient(
        credential,
        protocol_type=protocol,
        reconnect_retry_total=0,
        message_retry_total=0,  # a Forbidden ack fails the call at once
        ack_timeout=5,
    )
    received: queue.Queue[tuple[str, Any]] = queue.Queue()
    client.subscribe(CallbackType.CONNECTED, lambda e: received.put(("connected", e)))
    client.subscribe(CallbackType.GROUP_MESSAGE, lambda e: received.put(("group", e)))
    client.subscribe(CallbackType.SERVER_MESSAGE, lambda e: received.put(("server", e)))
    client.open()
    return client, received


def _next(received: queue.Queue[tuple[str, Any]], kind: str) -> Any:
    while True:
        got_kind, event = received.get(timeout=5)
        if got_kind == kind:
            return event


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.value)
def test_client_sdk_receives_group_and_user_messages(service, protocol) -> None:
    server: WebPubSubServiceClient = service("bare")
    user = f"sdk-{uuid.uuid4().hex[:8]}"
    group = f"jobs-{user}"
    client, received = _client(
        server, protocol, user_id=user, roles=[f"webpubsub.joinLeaveGroup.{group}"]
    )
    try:
        connected = _next(received, "connected")
        assert connected.user_id == user and connected.connection_id
        client.join_group(group)
        server.send_to_group(group, {"status": "done"})
        message = _next(received, "group")
        assert (message.group, message.data_type, message.data) == (
            group,
            "json",
            {"status": "done"},
        )
        server.send_to_user(user, "for you", content_type="text/plain")
        direct = _next(received, "server")
        assert (direct.data_type, direct.data) == ("text", "for you")
        server.send_to_user(user, b"\x07", content_type="application/octet-stream")
        assert bytes(_next(received, "server").data) == b"\x07"
        if protocol == WebPubSubProtocolType.JSON_RELIABLE:
            assert direct.sequence_id is not None

        with pytest.raises(SendMessageError) as refused:
            client.join_group("not-allowed")
        assert refused.value.error_detail.name == "Forbidden"
        with pytest.raises(SendMessageError):
            client.send_to_group(group, "no send role", WebPubSubDataType.TEXT)

        client.leave_group(group)
        server.send_to_group(group, {"status": "missed"})
        server.send_to_user(user, "after", content_type="text/plain")
        assert _next(received, "server").data == "after"
        assert received.empty()
    finally:
        client.close()


def test_clients_publish_to_each_other(service) -> None:
    server: WebPubSubServiceClient = service("bare")
    group = f"chat-{uuid.uuid4().hex[:8]}"
    roles = [f"webpubsub.joinLeaveGroup.{group}", f"webpubsub.sendToGroup.{group}"]
    sender, sender_inbox = _client(server, PROTOCOLS[0], user_id="sender", roles=roles)
    listener, inbox = _client(server, PROTOCOLS[1], user_id="listener", roles=roles)
    try:
        sender.join_group(group)
        listener.join_group(group)
        sender.send_to_group(group, {"hello": "world"}, WebPubSubDataType.JSON, no_echo=True)
        message = _next(inbox, "group")
        assert (message.data, message.from_user_id) == ({"hello": "world"}, "sender")
        sender.send_to_group(group, "echo", WebPubSubDataType.TEXT)
        assert _next(sender_inbox, "group").data == "echo"  # the no-echo message never came
        assert _next(inbox, "group").data == "echo"
    finally:
        sender.close()
        listener.close()


def test_custom_events_reach_the_handler_and_its_answer_comes_back(service, upstream) -> None:
    server: WebPubSubServiceClient = service("qcos")
    user = f"event-{uuid.uuid4().hex[:8]}"
    upstream.reply("submit", 200, b'{"accepted": true}', "application/json")
    client, received = _client(server, PROTOCOLS[0], user_id=user)
    try:
        client.send_event("submit", {"circuit": "h q[0];"}, WebPubSubDataType.JSON)
        answer = _next(received, "server")
        assert (answer.data_type, answer.data) == ("json", {"accepted": True})
    finally:
        client.close()
    events = [e for e in upstream.events(event="submit") if e["headers"]["ce-userId"] == user]
    assert len(events) == 1
    headers = events[0]["headers"]
    assert headers["ce-type"] == "azure.webpubsub.user.submit"
    assert headers["ce-subprotocol"] == "json.reliable.webpubsub.azure.v1"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(events[0]["body"]) == {"circuit": "h q[0];"}
    connect = [e for e in upstream.events(event="connect") if e["headers"]["ce-userId"] == user]
    assert json.loads(connect[0]["body"])["subprotocols"] == ["json.reliable.webpubsub.azure.v1"]
