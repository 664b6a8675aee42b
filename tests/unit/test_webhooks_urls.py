"""`shared.webhooks.urls.check`: which receivers a webhook may name, so a subscription cannot make
the gateway reach into its own network. Names are resolved by a stand-in resolver."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from shared.webhooks.urls import Target, UrlRefused, check

PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def resolving(*addresses: str) -> Any:
    """A resolver (`socket.getaddrinfo`'s shape) that answers `addresses` for every name."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return resolve


def refused(url: str, *addresses: str, allow_loopback: bool = False) -> str:
    with pytest.raises(UrlRefused) as error:
        check(url, allow_loopback=allow_loopback, resolver=resolving(*addresses))
    assert error.value.status == 422 and error.value.error_code == "WEBHOOK_URL_REFUSED"
    return error.value.detail


def test_an_https_receiver_on_a_public_address_is_accepted_and_pinned_to_it() -> None:
    # when
    target = check(
        "https://ci.example.com/hooks/qcos?team=7",
        allow_loopback=False,
        resolver=resolving(PUBLIC),
    )
    # then the delivery connects to the address checked, asking for the named host and path
    assert target == Target("https", "ci.example.com", 443, "/hooks/qcos?team=7", PUBLIC)
    assert target.host_header == "ci.example.com"


def test_a_port_other_than_the_default_is_kept_in_the_host_header() -> None:
    target = check("https://ci.example.com:8443", allow_loopback=False, resolver=resolving(PUBLIC))
    assert (target.port, target.path, target.host_header) == (8443, "/", "ci.example.com:8443")


def test_an_ipv6_literal_host_is_bracketed_in_the_host_header() -> None:
    target = check(
        f"https://[{PUBLIC_V6}]:444/x", allow_loopback=False, resolver=resolving(PUBLIC_V6)
    )
    assert target.host_header == f"[{PUBLIC_V6}]:444"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback
        "10.1.2.3",  # private
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # link-local: the instance metadata service
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "0.0.0.0",  # unspecified
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "::1",
        "fe80::1%eth0",  # link-local, with a zone
        "fc00::1",  # unique local
        "::ffff:10.0.0.1",  # a private IPv4 address, mapped
    ],
)
def test_a_receiver_that_resolves_to_a_non_public_address_is_refused(address: str) -> None:
    detail = refused("https://hooks.example.com/", address)
    assert "resolves to" in detail


def test_one_non_public_address_among_public_ones_is_enough_to_refuse() -> None:
    assert "private" in refused("https://hooks.example.com/", PUBLIC, "10.0.0.5")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/", "must be an https URL"),
        ("ftp://hooks.example.com/", "must be an https URL"),
        ("hooks.example.com/path", "must be an https URL"),
        ("https://user:pw@hooks.example.com/", "must not carry credentials"),
        ("https://token@hooks.example.com/", "must not carry credentials"),
        ("https:///path-only", "has no host"),
        ("https://hooks.example.com:99999/", "not a valid URL"),
    ],
)
def test_a_url_that_is_not_a_plain_https_receiver_is_refused(url: str, why: str) -> None:
    assert why in refused(url, PUBLIC)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def failing(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror("Name or service not known")

    with pytest.raises(UrlRefused, match="does not resolve"):
        check("https://nowhere.invalid/", allow_loopback=False, resolver=failing)
    assert "does not resolve" in refused("https://empty.example.com/")  # no addresses at all


def test_local_runs_may_use_loopback_over_http_and_nothing_else_is_relaxed() -> None:
    # given loopback allowed (QCOS_WEBHOOKS_ALLOW_LOOPBACK=true)
    target = check("http://localhost:7071/hook", allow_loopback=True, resolver=resolving("::1"))
    # then a loopback receiver is accepted over plain http
    assert (target.scheme, target.address, target.host_header) == ("http", "::1", "localhost:7071")
    # but a public one still needs https, and private networks stay closed
    assert "https" in refused("http://hooks.example.com/", PUBLIC, allow_loopback=True)
    assert "private" in refused("https://hooks.example.com/", "10.0.0.5", allow_loopback=True)
    assert "https" in refused("http://both.example.com/", "127.0.0.1", PUBLIC, allow_loopback=True)


def test_a_trailing_dot_in_the_host_is_dropped() -> None:
    target = check("https://ci.example.com./h", allow_loopback=False, resolver=resolving(PUBLIC))
    assert target.host == "ci.example.com"
