"""HTTP triggers over real HTTP: routing, round trips, errors, concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
import requests

from funchost.testing import FuncHost

if TYPE_CHECKING:
    from conftest import AppRunner, RunningApp


@pytest.fixture(scope="module")
def http_app(run_app_module: AppRunner) -> RunningApp:
    """The http sample app with the default route prefix `api`."""
    return run_app_module.start("http")


@pytest.fixture(scope="module")
def http_app_no_prefix(run_app_module: AppRunner) -> RunningApp:
    """The same app with host.json extensions.http.routePrefix set to ""."""
    return run_app_module.start("http", host_json={"extensions": {"http": {"routePrefix": ""}}})


def test_routes_live_under_the_default_api_prefix(http_app: RunningApp) -> None:
    # given the app runs with the default route prefix
    # when a route is called with and without the prefix
    with_prefix = requests.get(f"{http_app.url}/api/items/42", timeout=10)
    without_prefix = requests.get(f"{http_app.url}/items/42", timeout=10)
    # then only the prefixed path reaches the function
    assert with_prefix.status_code == 200
    assert with_prefix.json() == {"route": "item_by_id", "id": "42"}
    assert without_prefix.status_code == 404


def test_an_empty_route_prefix_serves_routes_at_the_root(http_app_no_prefix: RunningApp) -> None:
    # given host.json sets routePrefix to ""
    # when a route is called at the root and under /api
    at_root = requests.get(f"{http_app_no_prefix.url}/items/42", timeout=10)
    under_api = requests.get(f"{http_app_no_prefix.url}/api/items/42", timeout=10)
    # then the root path is the route and /api is not
    assert at_root.status_code == 200
    assert at_root.json() == {"route": "item_by_id", "id": "42"}
    assert under_api.status_code == 404


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("items/42", {"route": "item_by_id", "id": "42"}),
        ("items/-7", {"route": "item_by_id", "id": "-7"}),
        ("items/latest", {"route": "latest_item"}),
        ("items/LATEST", {"route": "latest_item"}),
        ("items/blue-widget", {"route": "item_by_slug", "slug": "blue-widget"}),
        ("items/99999999999", {"route": "item_by_slug", "slug": "99999999999"}),
    ],
)
def test_a_literal_beats_an_int_parameter_which_beats_a_plain_parameter(
    http_app: RunningApp, path: str, expected: dict[str, str]
) -> None:
    # given routes items/latest, items/{id:int} and items/{slug}
    # when a path that several of them could match is requested
    response = requests.get(f"{http_app.url}/api/{path}", timeout=10)
    # then the most specific route answers (an int beyond 32 bits is no int)
    assert response.status_code == 200
    assert response.json() == expected


def test_an_optional_parameter_may_be_left_out(http_app: RunningApp) -> None:
    # given the route greet/{name?}
    # when it is called with and without the name
    named = requests.get(f"{http_app.url}/api/greet/Ada", timeout=10)
    unnamed = requests.get(f"{http_app.url}/api/greet", timeout=10)
    # then both reach the function, which sees the name only when given
    assert named.text == "Hello, Ada"
    assert unnamed.text == "Hello, world"


def test_a_catch_all_parameter_takes_the_rest_of_the_path(http_app: RunningApp) -> None:
    # given the route files/{*path}
    # when a nested path is requested
    response = requests.get(f"{http_app.url}/api/files/docs/2024/report.txt", timeout=10)
    # then the parameter holds every remaining segment
    assert response.status_code == 200
    assert response.json() == {"path": "docs/2024/report.txt"}


def test_a_path_no_route_matches_is_404(http_app: RunningApp) -> None:
    # when a path no function declares is requested
    response = requests.get(f"{http_app.url}/api/no/such/route", timeout=10)
    # then the host answers 404 without invoking anything
    assert response.status_code == 404


def test_a_method_the_route_does_not_allow_is_405(http_app: RunningApp) -> None:
    # given echo accepts POST and PUT only
    # when it is called with GET and DELETE
    get = requests.get(f"{http_app.url}/api/echo", timeout=10)
    delete = requests.delete(f"{http_app.url}/api/echo", timeout=10)
    # then both are refused as a wrong method, not a missing route
    assert get.status_code == 405
    assert delete.status_code == 405


def test_query_headers_and_body_reach_the_function_and_its_response_comes_back_as_returned(
    http_app: RunningApp,
) -> None:
    # when a request with query parameters, a header and a body is sent
    response = requests.put(
        f"{http_app.url}/api/echo",
        params={"color": "red", "size": "10"},
        headers={"X-Test": "header-value"},
        data="payload ✓".encode(),
        timeout=10,
    )
    # then the function saw all of them
    assert response.json() == {
        "method": "PUT",
        "params": {"color": "red", "size": "10"},
        "x_test": "header-value",
        "body": "payload ✓",
    }
    # and the status, headers and mimetype it returned come back unchanged
    assert response.status_code == 201
    assert response.headers["X-Echo"] == "yes"
    assert response.headers["Location"] == "/api/echo/1"
    assert response.headers["Content-Type"].startswith("application/json")


def test_a_binary_body_and_its_mimetype_come_back_byte_for_byte(http_app: RunningApp) -> None:
    # when a function returns bytes with a mimetype and a non-default status
    response = requests.get(f"{http_app.url}/api/binary", timeout=10)
    # then the client gets exactly those bytes, that type and that status
    assert response.status_code == 203
    assert response.content == b"\x00\x01\xfe\xff"
    assert response.headers["Content-Type"].startswith("application/octet-stream")


def test_an_unhandled_exception_is_a_generic_500_and_its_traceback_goes_to_the_log(
    http_app: RunningApp,
) -> None:
    # given a function that raises
    # when it is called
    response = requests.get(f"{http_app.url}/api/boom", timeout=10)
    # then the client gets a 500 that reveals nothing of the error
    assert response.status_code == 500
    assert "secret-detail" not in response.text
    assert "Traceback" not in response.text
    # and the log has the failure with its traceback
    log = http_app.host.wait_for_log("RuntimeError: secret-detail-7f3a must stay in the log")
    assert "Traceback (most recent call last)" in log
    assert "Executed 'Functions.boom' (Failed" in log


@pytest.mark.parametrize("route", ["slow", "slow-async"])
def test_slow_requests_are_served_concurrently(http_app: RunningApp, route: str) -> None:
    # given a function that takes 1 s (a blocking sleep, or an awaited one)
    url = f"{http_app.url}/api/{route}"
    # when four requests arrive at once
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: requests.get(url, timeout=10), range(4)))
    elapsed = time.perf_counter() - started
    # then they run side by side rather than one after another (4 s)
    assert [r.status_code for r in responses] == [200] * 4
    assert elapsed < 2.5, f"4 concurrent 1 s requests took {elapsed:.2f}s"


def test_the_host_status_endpoint_reports_running(http_app: RunningApp) -> None:
    # when the admin status endpoint is asked
    response = requests.get(f"{http_app.url}/admin/host/status", timeout=10)
    # then it answers Running
    assert response.status_code == 200
    assert response.json()["state"] == "Running"


def test_a_stopped_host_exits_cleanly_and_a_restart_serves_on_the_same_url(
    run_app: AppRunner,
) -> None:
    # given a running app
    app = run_app.start("http")
    host: FuncHost = app.host
    url_before = host.url
    # when it is stopped gracefully and started again
    code = host.stop(grace=10)
    restarted = host.restart()
    # then it exited with 0 and serves again on the same URL
    assert code == 0
    assert restarted.url == url_before
    assert requests.get(f"{host.url}/api/greet/again", timeout=10).text == "Hello, again"
