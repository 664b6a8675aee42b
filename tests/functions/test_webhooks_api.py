"""Webhook subscriptions over the HTTP functions: subscribe, list, unsubscribe, the log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.api import webhooks
from shared.services import Services, services
from tests.conftest import reset_caches

PUBLIC = "https://93.184.215.14/hooks/qcos"  # an address literal: no DNS needed


@pytest.fixture
def svc(services_env: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("QCOS_WEBHOOKS_MAX_PER_USER", "3")
    reset_caches()
    yield services()


@pytest.fixture
def loopback(svc: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("QCOS_WEBHOOKS_MAX_PER_USER", "3")
    monkeypatch.setenv("QCOS_WEBHOOKS_ALLOW_LOOPBACK", "true")
    reset_caches()
    yield services()


def create(http: Callable[..., Any], headers: dict[str, str], **body: Any) -> Any:
    body = {"url": PUBLIC, "events": ["job.completed"], **body}
    return http(webhooks.create_webhook, "POST", "/api/v1/webhooks", headers=headers, body=body)


def listed(http: Callable[..., Any], headers: dict[str, str]) -> Any:
    return http(webhooks.list_webhooks, "GET", "/api/v1/webhooks", headers=headers)


def deliveries(http: Callable[..., Any], headers: dict[str, str], webhook_id: str) -> Any:
    return http(
        webhooks.webhook_deliveries,
        "GET",
        f"/api/v1/webhooks/{webhook_id}/deliveries?limit=10",
        headers=headers,
        route_params={"webhook_id": webhook_id},
    )


def delete(http: Callable[..., Any], headers: dict[str, str], webhook_id: str) -> Any:
    return http(
        webhooks.delete_webhook,
        "DELETE",
        f"/api/v1/webhooks/{webhook_id}",
        headers=headers,
        route_params={"webhook_id": webhook_id},
    )


def test_subscription_shows_its_secret_once_then_masked(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a user
    user = make_user()
    # when they subscribe
    created = create(http, user.headers, events=["job.failed", "job.completed"], description="ci")
    # then the answer has the whole secret; the list masks it and names the event catalog
    assert created.status == 201, created.body
    secret = created.body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created.body["events"] == ["job.completed", "job.failed"]
    answer = listed(http, user.headers)
    assert answer.status == 200
    (item,) = answer.body["webhooks"]
    assert item["id"] == created.body["id"] and item["url"] == PUBLIC
    assert item["secret"] != secret and secret[-4:] in item["secret"]
    assert secret not in str(answer.body)
    assert "job.queued" in answer.body["events"] and answer.body["count"] == 1


def test_a_secret_of_the_callers_own_is_kept(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    created = create(http, user.headers, secret="my-own-secret-0123456789")
    assert created.status == 201 and created.body["secret"] == "my-own-secret-0123456789"


def test_delete_removes_it_and_another_users_webhook_is_not_found(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given two users, one with a webhook
    owner, other = make_user(), make_user()
    webhook_id = create(http, owner.headers).body["id"]
    # when the other user reads its log or deletes it, then it is not found
    assert deliveries(http, other.headers, webhook_id).status == 404
    answer = delete(http, other.headers, webhook_id)
    assert answer.status == 404 and answer.body["error_code"] == "WEBHOOK_NOT_FOUND"
    assert listed(http, other.headers).body["webhooks"] == []
    # and the owner's log is empty, then the owner deletes it
    log = deliveries(http, owner.headers, webhook_id)
    assert log.status == 200 and log.body == {
        "webhook_id": webhook_id,
        "deliveries": [],
        "count": 0,
    }
    assert delete(http, owner.headers, webhook_id).status == 204
    assert listed(http, owner.headers).body["webhooks"] == []
    assert delete(http, owner.headers, webhook_id).status == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # not https
        "https://127.0.0.1/hook",  # loopback
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",  # private
        "https://192.168.0.10/hook",
        "https://172.16.5.4/hook",
        "https://169.254.169.254/metadata",  # link-local: the instance metadata service
        "https://[fe80::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",  # private, mapped into IPv6
        "https://100.64.0.1/hook",  # shared address space
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",  # multicast
        "https://240.0.0.1/hook",  # reserved
        "ftp://93.184.215.14/hook",
        "https://user:pw@93.184.215.14/hook",
        "https:///nohost",
        "https://no-such-host.invalid/hook",
    ],
)
def test_receivers_that_are_not_public_https_are_refused(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any], url: str
) -> None:
    answer = create(http, make_user().headers, url=url)
    assert answer.status == 422, answer.body
    assert answer.body["error_code"] == "WEBHOOK_URL_REFUSED"


def test_loopback_is_allowed_over_http_only_with_the_local_setting(
    loopback: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    assert create(http, user.headers, url="http://127.0.0.1:9/hook").status == 201
    assert create(http, user.headers, url="http://localhost:9/hook").status == 201
    # the setting allows loopback only: private addresses and plain http elsewhere stay out
    assert create(http, user.headers, url="https://10.0.0.1/hook").status == 422
    assert create(http, user.headers, url="http://93.184.215.14/hook").status == 422


def test_limits_on_count_url_events_and_description(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    for _ in range(3):
        assert create(http, user.headers).status == 201
    over = create(http, user.headers)
    assert over.status == 400 and over.body["error_code"] == "WEBHOOK_LIMIT_EXCEEDED"
    fresh = make_user()
    long_url = PUBLIC + "?" + "a" * 2100
    assert create(http, fresh.headers, url=long_url).status == 422
    assert create(http, fresh.headers, events=[]).status == 422
    assert create(http, fresh.headers, events=["job.exploded"]).status == 422
    assert create(http, fresh.headers, description="d" * 300).status == 422
    assert create(http, fresh.headers, secret="short").status == 422
    assert create(http, fresh.headers, owner="someone").status == 422
    assert listed(http, fresh.headers).body["count"] == 0


def test_the_log_limit_is_checked(
    svc: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    webhook_id = create(http, user.headers).body["id"]
    answer = http(
        webhooks.webhook_deliveries,
        "GET",
        f"/api/v1/webhooks/{webhook_id}/deliveries?limit=0",
        headers=user.headers,
        route_params={"webhook_id": webhook_id},
    )
    assert answer.status == 422


def test_webhooks_need_a_key(services_env: Services, http: Callable[..., Any]) -> None:
    assert listed(http, {}).status == 401
