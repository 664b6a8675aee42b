"""Which receivers a webhook may name: checked at subscription and again at each delivery
(the name may resolve elsewhere by then), and the delivery connects to the address checked.

A receiver must be `https` and resolve to public (global unicast) addresses only: never
loopback, private, link-local, shared, multicast, reserved or unspecified ones, so a
subscription cannot make the gateway reach into its own network (the instance metadata
service at 169.254.169.254 included). With `QCOS_WEBHOOKS_ALLOW_LOOPBACK=true` (local runs)
a receiver on loopback is accepted, over plain `http` too; nothing else is relaxed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ValidationFailed

Resolver = Callable[..., list[tuple[Any, ...]]]


class UrlRefused(ValidationFailed):
    code = "WEBHOOK_URL_REFUSED"


@dataclass(frozen=True)
class Target:
    """A checked receiver: where to connect (`address`) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str  # with the query
    address: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def check(url: str, *, allow_loopback: bool, resolver: Resolver = socket.getaddrinfo) -> Target:
    """The receiver `url` names, resolved; raises `UrlRefused` saying why it may not be one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("url is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("url must be an https URL")
    if scheme == "http" and not allow_loopback:
        raise UrlRefused("url must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("url must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("url has no host")
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, port, resolver)
    loopback = [a for a in addresses if a.is_loopback]
    if loopback and not allow_loopback:
        raise UrlRefused("url resolves to a loopback address")
    for address in addresses:
        if not address.is_loopback and (
            not address.is_global or address.is_multicast or address.is_reserved
        ):
            raise UrlRefused("url resolves to a private, link-local or reserved address")
    if scheme == "http" and len(loopback) < len(addresses):
        raise UrlRefused("url must be an https URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port, path, str(addresses[0]))


def _resolve(
    host: str, port: int, resolver: Resolver
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused("url's host does not resolve") from exc
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address not in found:
            found.append(address)
    if not found:
        raise UrlRefused("url's host does not resolve")
    return found
