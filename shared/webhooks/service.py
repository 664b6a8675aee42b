"""Webhook subscriptions, and the delivery of one queued message.

Storage calls: none on the request or job path (`dispatcher`). Per job event, in the
dispatcher's thread: one query of the owner's subscriptions per `CACHE_SECONDS`, and one
enqueue per subscription that wants it. Per delivery attempt, in the queue function: one
read of the subscription (its secret, and whether it still exists), one log row, and one
enqueue when another attempt follows (plus the host's receive and delete).
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared import __version__, clock
from shared.config import WebhookSettings
from shared.errors import Conflict, LimitExceeded, NotFound
from shared.webhooks import signing, urls
from shared.webhooks.dispatcher import Dispatcher
from shared.webhooks.models import EVENT_TYPES, Attempt, Outcome, Subscription
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.schemas import (
    CreateWebhookRequest,
    DeliveryList,
    WebhookList,
    WebhookView,
    delivery_view,
    view,
)

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4096  # read of the receiver's answer, then the connection is closed
MAX_ERROR_LENGTH = 200


@dataclass(frozen=True)
class Sent:
    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Webhooks:
    def __init__(
        self,
        settings: WebhookSettings,
        repo: WebhookRepository,
        resolver: urls.Resolver = socket.getaddrinfo,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._resolver = resolver
        self.dispatcher = Dispatcher(repo.of_user, repo.enqueue)

    def start(self) -> Webhooks:
        """Deliver this process's job events from now on."""
        self.dispatcher.start()
        return self

    def close(self) -> None:
        self.dispatcher.close()

    # -- subscriptions ---------------------------------------------------------------------------

    def create(self, user_id: str, request: CreateWebhookRequest) -> WebhookView:
        """Subscribe `request.url` to `request.events`; the answer carries the secret (once).
        Raises `UrlRefused` (422) for a receiver that may not be one, `LimitExceeded` (400)
        past `max_per_user` subscriptions."""
        self._check(request.url)
        if len(self._repo.of_user(user_id)) >= self._settings.max_per_user:
            raise LimitExceeded(
                f"at most {self._settings.max_per_user} webhooks per user",
                error_code="WEBHOOK_LIMIT_EXCEEDED",
            )
        subscription = Subscription(
            webhook_id="wh_" + secrets.token_hex(12),
            user_id=user_id,
            url=request.url,
            events=tuple(e for e in EVENT_TYPES if e in request.events),
            description=request.description,
            secret=request.secret or "whsec_" + secrets.token_urlsafe(32),
            created_at=clock.now_iso(),
        )
        if not self._repo.create(subscription):
            raise Conflict("webhook id taken; try again")
        self.dispatcher.invalidate(user_id)
        return view(subscription, reveal=True)

    def list(self, user_id: str) -> WebhookList:
        found = [view(s) for s in self._repo.of_user(user_id)]
        return WebhookList(webhooks=found, count=len(found), events=list(EVENT_TYPES))

    def delete(self, user_id: str, webhook_id: str) -> None:
        """Unsubscribe; deliveries already queued are dropped. Raises `NotFound`."""
        self._owned(user_id, webhook_id)
        self._repo.delete(user_id, webhook_id)
        self.dispatcher.invalidate(user_id)

    def deliveries(self, user_id: str, webhook_id: str, limit: int) -> DeliveryList:
        """The webhook's latest attempts, newest first. Raises `NotFound`."""
        self._owned(user_id, webhook_id)
        attempts = self._repo.attempts(webhook_id, limit)
        return DeliveryList(
            webhook_id=webhook_id,
            deliveries=[delivery_view(a) for a in attempts],
            count=len(attempts),
        )

    def _owned(self, user_id: str, webhook_id: str) -> Subscription:
        found = self._repo.get(user_id, webhook_id) if len(webhook_id) <= 64 else None
        if found is None:  # another user's too: 404, never 403
            raise NotFound("webhook not found", error_code="WEBHOOK_NOT_FOUND")
        return found

    def _check(self, url: str) -> urls.Target:
        return urls.check(
            url, allow_loopback=self._settings.allow_loopback, resolver=self._resolver
        )

    # -- delivery --------------------------------------------------------------------------------

    def deliver(self, text: str) -> Attempt | None:
        """Send one queued delivery and log the attempt; a failed one is queued again after
        the next of `retry_seconds`, or logged `failed` after the last. None when there was
        nothing to send (the webhook deleted, or a message this did not write). Raises only
        for storage errors (the host then delivers the message again)."""
        try:
            message: Mapping[str, Any] = json.loads(text)
            user_id, webhook_id = str(message["user_id"]), str(message["webhook_id"])
            attempt, event = int(message["attempt"]), message["event"]
            delivery_id, event_type = str(message["delivery_id"]), str(event["type"])
        except (ValueError, KeyError, TypeError):
            logger.error("webhooks: dropped a delivery message this app did not write")
            return None
        subscription = self._repo.get(user_id, webhook_id)
        if subscription is None:
            return None
        sent = self._send(subscription, delivery_id, event_type, event)
        retry = not sent.ok and attempt < self._settings.max_attempts and not _refused(sent)
        outcome: Outcome = "delivered" if sent.ok else "retrying" if retry else "failed"
        logged = Attempt(
            delivery_id=delivery_id,
            webhook_id=webhook_id,
            event_type=event_type,
            event_id=str(event.get("id", "")),
            attempt=attempt,
            outcome=outcome,
            status_code=sent.status_code,
            duration_ms=sent.duration_ms,
            error=sent.error,
            at=clock.now_iso(),
        )
        self._repo.record(logged)
        if retry:
            delay = self._settings.retry_seconds[attempt - 1]
            self._repo.enqueue({**message, "attempt": attempt + 1}, delay)
        return logged

    def _send(
        self, subscription: Subscription, delivery_id: str, event_type: str, event: Any
    ) -> Sent:
        started = time.monotonic()
        try:
            target = self._check(subscription.url)
        except urls.UrlRefused as exc:
            return Sent(None, 0, f"refused: {exc.detail}")
        body = json.dumps(event, separators=(",", ":"))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"qcos-webhooks/{__version__}",
            "Host": target.host_header,
            signing.HEADER: signing.sign(subscription.secret, body),
            "X-QCOS-Event": event_type,
            "X-QCOS-Delivery": delivery_id,
            "X-QCOS-Webhook-Id": subscription.webhook_id,
        }
        connection = _connection(target, self._settings.timeout_seconds)
        try:
            connection.request("POST", target.path, body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status, error = response.status, None
            if not 200 <= status < 300:
                error = f"receiver answered {status}"
        except (OSError, http.client.HTTPException) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
        finally:
            connection.close()
        return Sent(status, int((time.monotonic() - started) * 1000), error)


def _refused(sent: Sent) -> bool:
    return (sent.error or "").startswith("refused:")


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address, whatever the name resolves to by then."""

    def __init__(self, target: urls.Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: urls.Target, timeout: float) -> None:
        self._context = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._context)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _connection(target: urls.Target, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPS(target, timeout)
    return _PinnedHTTP(target, timeout)
