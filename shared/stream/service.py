"""The live stream through Azure Web PubSub: the event handler, negotiate, and the publisher.

A client's connection reaches the hub either plainly, with no user (funchost's proxy for the
reference's URL, locally), or with a negotiated URL whose token names the user and joins its
groups. Either way its first text frame is a subscription: the service posts it to our event
handler as a `message` CloudEvent, and the handler checks the key, sends the acknowledgement
to the connection, then adds the connection to the groups of its topics (`user.<user_id>`,
`backend_status`): the acknowledgement is the first frame a subscribed client gets. A bad
frame, key or topic gets an error frame and the connection is closed.

Job and backend events go to those groups (`publisher.Publisher`): one send per event,
whatever the number of connections.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.accounts.service import Accounts
from shared.config import StreamSettings
from shared.errors import ApiError, ServiceUnavailable
from shared.stream import messages
from shared.stream.publisher import Publisher

logger = logging.getLogger(__name__)

# ce-connectionState of a connection that has subscribed: it may not subscribe again (a second
# key would join another user's group beside the first).
SUBSCRIBED = "subscribed"
TOKEN_MINUTES = 5  # a client token is checked once, at the handshake
MAX_EVENT_BYTES = 65_536


@dataclass(frozen=True)
class HandlerAnswer:
    """What the event handler answers the service."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def signature_valid(key: str, connection_id: str, header: str | None) -> bool:
    """`ce-signature`: one or more `sha256=<hex HMAC-SHA256(key, connection id)>`, comma
    separated (Azure sends one per access key)."""
    if not header or not connection_id:
        return False
    expected = hmac.new(key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()
    found = False
    for value in header.split(","):
        scheme, _, digest = value.strip().partition("=")
        if scheme.lower() == "sha256":
            found |= hmac.compare_digest(digest.strip().lower(), expected)
    return found


class Stream:
    """The stream's server side for one hub. Not configured (no connection string): every
    method but `configured` raises `ServiceUnavailable`, and nothing is published."""

    def __init__(self, settings: StreamSettings, accounts: Accounts) -> None:
        self._settings = settings
        self._accounts = accounts
        self._client: Any = None
        self._client_lock = threading.Lock()
        self.publisher: Publisher | None = None
        if settings.connection_string:
            self._key = settings.access_key
            self.publisher = Publisher(self.client).start()

    @property
    def configured(self) -> bool:
        return self._settings.configured

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()

    def client(self) -> Any:
        """The service SDK's client (made on first use: the SDK is imported lazily)."""
        if not self._settings.connection_string:
            raise ServiceUnavailable("The live stream is not configured on this deployment")
        with self._client_lock:
            if self._client is None:
                from azure.messaging.webpubsubservice import WebPubSubServiceClient

                self._client = WebPubSubServiceClient.from_connection_string(
                    self._settings.connection_string,
                    hub=self._settings.hub,
                    retry_total=2,
                    connection_timeout=5,
                    read_timeout=10,
                )
            return self._client

    def negotiate(self, user_id: str) -> str:
        """A client URL for `user_id`, good for a few minutes, whose connection belongs to the
        user and is in the groups of both topics."""
        token = self.client().get_client_access_token(
            user_id=user_id,
            groups=messages.groups_for(user_id, messages.TOPICS),
            minutes_to_expire=TOKEN_MINUTES,
        )
        return str(token["url"])

    def handle_event(self, method: str, headers: Mapping[str, str], body: bytes) -> HandlerAnswer:
        """The event handler: the abuse-protection `OPTIONS`, then CloudEvents (binary mode)
        signed with the access key. `headers` are matched without regard to case."""
        if not self._settings.connection_string:
            return HandlerAnswer(503)
        lower = {k.lower(): v for k, v in headers.items()}
        if method == "OPTIONS":
            # The CloudEvents webhook handshake: any origin may deliver, as each event is
            # checked on its own signature.
            origin = lower.get("webhook-request-origin")
            return HandlerAnswer(200 if origin else 400, headers={"WebHook-Allowed-Origin": "*"})
        connection_id = lower.get("ce-connectionid", "")
        if not signature_valid(self._key, connection_id, lower.get("ce-signature")):
            logger.warning("stream: refused an event with a missing or wrong ce-signature")
            return HandlerAnswer(401)
        if lower.get("ce-hub", "").lower() != self._settings.hub.lower():
            return HandlerAnswer(400)
        if len(body) > MAX_EVENT_BYTES:
            return HandlerAnswer(413)
        if lower.get("ce-type") != "azure.webpubsub.user.message":
            return HandlerAnswer(204)  # connect (allowed), connected, disconnected, others
        return self._on_message(connection_id, lower, body)

    def _on_message(
        self, connection_id: str, headers: Mapping[str, str], body: bytes
    ) -> HandlerAnswer:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if headers.get("ce-connectionstate") == SUBSCRIBED:
                raise messages.FrameError(
                    "ALREADY_SUBSCRIBED", "this connection has subscribed; open another one"
                )
            if content_type not in ("text/plain", "application/json"):
                raise messages.FrameError("INVALID_FRAME", "send the subscription as text")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise messages.FrameError("INVALID_FRAME", "the frame is not UTF-8") from None
            subscription = messages.parse_subscription(text)
            try:
                principal = self._accounts.authenticate(subscription.api_key)
            except ApiError as error:
                raise messages.FrameError(error.error_code, error.detail) from error
        except messages.FrameError as error:
            self._refuse(connection_id, error)
            return HandlerAnswer(204)
        # The acknowledgement first, then the groups: nothing the groups carry can reach the
        # client before it (an answer's body would be delivered after the joins).
        client = self.client()
        ack = messages.subscribed(subscription.topics)
        client.send_to_connection(connection_id, ack, content_type="application/json")
        for group in messages.groups_for(principal.user_id, subscription.topics):
            client.add_connection_to_group(group, connection_id)
        return HandlerAnswer(204, headers={"ce-connectionState": SUBSCRIBED})

    def _refuse(self, connection_id: str, error: messages.FrameError) -> None:
        """The error frame, then the close: in that order on the connection."""
        client = self.client()
        frame = messages.error(error.error_code, error.detail)
        try:
            client.send_to_connection(connection_id, frame, content_type="application/json")
        except Exception:  # gone already, or the service refused: the close still matters
            logger.warning("stream: could not send the error frame", exc_info=True)
        client.close_connection(connection_id, reason=error.error_code)
