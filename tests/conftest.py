"""Fixtures for the product's tests.

- `azurite`: one Azurite (in memory, free ports) for the session.
- `services_env`: the app's settings pointed at that Azurite with a known admin key; the
  process-wide caches (settings, services, the OpenAPI document) are rebuilt around each test.
- `make_user(tier, tenant)`: a fresh user (of `tenant`, if given) and its API key (so tests
  never share jobs).
- `http(fn, method, path, ...)`: call a registered HTTP function directly, as the worker would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
import pytest

from funchost.testing import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, free_port
from shared.accounts.tiers import TierName
from shared.config import get_settings
from shared.services import Services, services
from shared.storage.clients import JOBS_QUEUE

ADMIN_KEY = "qcos_admin_" + "t" * 40


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as instance:
        yield instance


def reset_caches() -> None:
    from shared.api.openapi import build_spec
    from shared.legal.license import reset as reset_license

    get_settings.cache_clear()
    reset_license()
    services.cache_clear()
    build_spec.cache_clear()


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request waits a second at most for what it runs (`QCOS_SYNC_TIMEOUT_SECONDS`); ask
    for it before `services_env`, which reads the settings."""
    monkeypatch.setenv("QCOS_SYNC_TIMEOUT_SECONDS", "1")


@pytest.fixture
def services_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("QCOS_ADMIN_API_KEY", ADMIN_KEY)
    reset_caches()
    yield services()
    # Messages of jobs nobody ran would read as a long wait to later tests' estimates.
    services().storage.queue(JOBS_QUEUE).clear_messages()
    reset_caches()


@pytest.fixture
def unreachable_storage_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings that name a storage account nothing answers for (a closed local port)."""
    port = free_port()
    endpoints = "".join(
        f"{kind}Endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        for kind in ("Blob", "Queue", "Table")
    )
    monkeypatch.setenv(
        "AzureWebJobsStorage",
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};{endpoints}",
    )
    monkeypatch.setenv("QCOS_ADMIN_API_KEY", ADMIN_KEY)
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def admin_headers(services_env: Services) -> dict[str, str]:
    """The headers that present the admin key."""
    return {"X-API-Key": ADMIN_KEY}


@dataclass(frozen=True)
class UserKey:
    user_id: str
    api_key: str
    tier: TierName

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


@pytest.fixture
def make_user(services_env: Services) -> Callable[..., UserKey]:
    def make(tier: str = "professional", tenant: str = "") -> UserKey:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        created = services_env.accounts.create_user(email, TierName(tier), tenant)
        return UserKey(created.user.user_id, created.api_key, created.user.tier)

    return make


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def call_http(
    fn: Callable[[func.HttpRequest], func.HttpResponse],
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """Call an HTTP function the way the worker does, and decode its JSON answer."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    req = func.HttpRequest(
        method=method,
        url=f"http://127.0.0.1:7071{path}",
        headers=headers or {},
        params=dict(parse_qsl(urlsplit(path).query)),
        route_params=route_params or {},
        body=data,
    )
    resp = fn(req)
    text = resp.get_body()
    if resp.mimetype != "application/json":  # a document (text, Markdown, CSV)
        return Answer(resp.status_code, dict(resp.headers), text.decode("utf-8"))
    return Answer(resp.status_code, dict(resp.headers), json.loads(text) if text else None)


@pytest.fixture
def http() -> Callable[..., Answer]:
    return call_http
