"""What the stand-in is told: the key, the hubs and their event handlers, the limits.

A hub's event handlers take the shape Azure gives them in the hub settings
(`Microsoft.SignalRService/webPubSub/hubs`, `properties.eventHandlers`)::

    {"qcos": {"eventHandlers": [{"urlTemplate": "http://127.0.0.1:7071/api/webpubsub/events",
                                 "userEventPattern": "*",
                                 "systemEvents": ["connect", "connected", "disconnected"]}],
              "anonymousConnectPolicy": "deny"}}

`--upstream HUB=URL` is short for one handler with every event.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Azure: a hub name starts with a letter and holds letters, digits and underscores.
HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
SYSTEM_EVENTS = ("connect", "connected", "disconnected")


class ConfigError(ValueError):
    """A setting the stand-in cannot run with; the message says which."""


@dataclass(frozen=True)
class EventHandler:
    url_template: str
    user_event_pattern: str = "*"
    system_events: tuple[str, ...] = SYSTEM_EVENTS

    def handles(self, event: str, *, system: bool) -> bool:
        if system:
            return event in self.system_events
        patterns = [p.strip() for p in self.user_event_pattern.split(",") if p.strip()]
        return "*" in patterns or event in patterns

    def url(self, event: str) -> str:
        return self.url_template.replace("{event}", event)


@dataclass(frozen=True)
class HubSettings:
    event_handlers: tuple[EventHandler, ...] = ()
    allow_anonymous: bool = False

    def handler_for(self, event: str, *, system: bool) -> EventHandler | None:
        """The first handler whose events include `event` (Azure takes the first match)."""
        for handler in self.event_handlers:
            if handler.handles(event, system=system):
                return handler
        return None


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1000
    max_frame_bytes: int = 1024 * 1024  # Azure's per-message limit is 1 MB
    max_messages_per_second: float = 100.0  # per connection, client to service
    max_groups_per_connection: int = 100
    max_outbound_queue: int = 1000  # frames waiting for a slow client before it is dropped
    max_request_bytes: int = 1024 * 1024  # REST bodies
    upstream_timeout_seconds: float = 20.0


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7080
    access_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    hubs: dict[str, HubSettings] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    @property
    def endpoint_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def endpoint(self) -> str:
        return f"http://{self.endpoint_host}:{self.port}"

    @property
    def connection_string(self) -> str:
        """Azure's format, with the port as its own field as Azure's local tools write it.

        The Python SDK appends `Port=` to the endpoint (`http://127.0.0.1` + `:7080`), and
        also takes the port inside the endpoint.
        """
        return (
            f"Endpoint=http://{self.endpoint_host};Port={self.port};"
            f"AccessKey={self.access_key};Version=1.0;"
        )

    def hub(self, name: str) -> HubSettings:
        """A hub with no settings still exists (Azure creates hubs on first use)."""
        return self.hubs.get(name, HubSettings())


def parse_upstream(value: str) -> tuple[str, HubSettings]:
    """`HUB=URL_TEMPLATE`: one handler for every system and user event."""
    hub, sep, url = value.partition("=")
    if not sep or not HUB_NAME.match(hub) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"--upstream wants HUB=http(s)://URL, got {value!r}")
    return hub, HubSettings(event_handlers=(EventHandler(url_template=url),))


def _parse_handler(hub: str, raw: Any) -> EventHandler:
    if not isinstance(raw, dict) or not isinstance(raw.get("urlTemplate"), str):
        raise ConfigError(f"hub {hub!r}: each event handler needs a urlTemplate")
    url = raw["urlTemplate"]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"hub {hub!r}: urlTemplate must be http(s), got {url!r}")
    pattern = raw.get("userEventPattern", "")
    events = raw.get("systemEvents", [])
    if not isinstance(pattern, str) or not isinstance(events, list):
        raise ConfigError(f"hub {hub!r}: userEventPattern is a string, systemEvents a list")
    unknown = [e for e in events if e not in SYSTEM_EVENTS]
    if unknown:
        raise ConfigError(f"hub {hub!r}: unknown system events {unknown}")
    return EventHandler(url, pattern, tuple(events))


def parse_hub_config(text: str) -> dict[str, HubSettings]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"hub config is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError("hub config is a JSON object of hub name to settings")
    hubs: dict[str, HubSettings] = {}
    for name, body in raw.items():
        if not HUB_NAME.match(name) or not isinstance(body, dict):
            raise ConfigError(f"bad hub entry {name!r}")
        handlers = body.get("eventHandlers", [])
        if not isinstance(handlers, list):
            raise ConfigError(f"hub {name!r}: eventHandlers is a list")
        policy = body.get("anonymousConnectPolicy", "deny")
        if policy not in ("allow", "deny"):
            raise ConfigError(f"hub {name!r}: anonymousConnectPolicy is allow or deny")
        hubs[name] = HubSettings(
            event_handlers=tuple(_parse_handler(name, h) for h in handlers),
            allow_anonymous=policy == "allow",
        )
    return hubs


def load_hub_config(path: Path) -> dict[str, HubSettings]:
    try:
        return parse_hub_config(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read hub config {path}: {error}") from None
