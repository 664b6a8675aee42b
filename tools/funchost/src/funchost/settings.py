"""Host settings: host.json, local.settings.json and `%Name%` resolution.

`Values` of local.settings.json become environment variables; a variable that is
already set wins, as with `func start`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

_PERCENT = re.compile(r"%([^%]+)%")


class ConfigError(Exception):
    """The app's configuration cannot be used; the message says what and where."""


def parse_timespan(value: Any, what: str) -> timedelta:
    """Parse a host.json TimeSpan (`hh:mm:ss[.fff]` or `d.hh:mm:ss`)."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)", str(value).strip())
    if not match:
        raise ConfigError(f"host.json {what}: {value!r} is not a TimeSpan like 00:00:30")
    days, hours, minutes, seconds = match.groups()
    return timedelta(
        days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
    )


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with Azure's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, section: dict[str, Any]) -> QueueOptions:
        batch_size = int(section.get("batchSize", 16))
        if not 1 <= batch_size <= 32:
            raise ConfigError(
                f"host.json extensions.queues.batchSize must be 1..32, got {batch_size}"
            )
        threshold = int(section.get("newBatchThreshold", batch_size // 2))
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ConfigError(
                "host.json extensions.queues.messageEncoding must be base64 or none, "
                f"got {encoding!r}"
            )
        polling = section.get("maxPollingInterval")
        visibility = section.get("visibilityTimeout")
        max_dequeue = int(section.get("maxDequeueCount", 5))
        if max_dequeue < 1:
            raise ConfigError("host.json extensions.queues.maxDequeueCount must be at least 1")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=max(0, threshold),
            max_polling_interval=(
                parse_timespan(polling, "maxPollingInterval").total_seconds()
                if polling is not None
                else 60.0
            ),
            visibility_timeout=(
                parse_timespan(visibility, "visibilityTimeout").total_seconds()
                if visibility is not None
                else 0.0
            ),
            max_dequeue_count=max_dequeue,
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostConfig:
    """What funchost reads from the app directory."""

    app_dir: Path
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    hub_name: str = "TestHubName"
    durable_connection: str = "AzureWebJobsStorage"
    function_timeout: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def load_local_settings(app_dir: Path) -> dict[str, str]:
    """Read `Values` from local.settings.json (absent file: no values)."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    values = data.get("Values") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: Values must be an object")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def apply_local_settings(values: dict[str, str], environ: dict[str, str] | None = None) -> None:
    """Export settings to the environment; a variable already set wins."""
    env = os.environ if environ is None else environ
    for key, value in values.items():
        env.setdefault(key, value)


def load_host_config(app_dir: Path) -> HostConfig:
    """Read host.json; a missing file means all defaults."""
    path = app_dir / "host.json"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    prefix = str(http.get("routePrefix", "api")).strip("/")
    durable = extensions.get("durableTask") or {}
    provider = durable.get("storageProvider") or {}
    timeout = data.get("functionTimeout")
    return HostConfig(
        app_dir=app_dir,
        route_prefix=prefix,
        queues=QueueOptions.from_host_json(extensions.get("queues") or {}),
        hub_name=resolve_setting_refs(str(durable.get("hubName", "TestHubName"))),
        durable_connection=str(provider.get("connectionStringName", "AzureWebJobsStorage")),
        function_timeout=(
            parse_timespan(timeout, "functionTimeout").total_seconds() if timeout else None
        ),
        raw=data,
    )


def resolve_setting_refs(value: str, environ: dict[str, str] | None = None) -> str:
    """Replace each `%Name%` with the setting's value; an unknown name is an error."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"setting {name!r} referenced as %{name}% is not defined")
        return env[name]

    return _PERCENT.sub(replace, value)
