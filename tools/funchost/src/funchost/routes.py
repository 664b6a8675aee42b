"""HTTP route templates as the Functions host reads them.

`items/{id:int}/{name?}`, catch-all `{*rest}`, constraints int, long, bool, alpha,
guid, float, double, decimal, datetime, and minlength(n), maxlength(n), length(n), min(n),
max(n) (`{ignored:maxlength(0)?}` is how an app serves the site root). Literal segments
match case-insensitively and win over parameters, as in ASP.NET routing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from .settings import ConfigError

T = TypeVar("T")


def _is_number(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
            return True
        except ValueError:
            return False

    return check


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
        return True
    except ValueError:
        return False


CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": lambda v: re.fullmatch(r"-?\d+", v) is not None and -(2**31) <= int(v) < 2**31,
    "long": lambda v: re.fullmatch(r"-?\d+", v) is not None and -(2**63) <= int(v) < 2**63,
    "bool": lambda v: v.lower() in ("true", "false"),
    "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
    "guid": _is_guid,
    "float": _is_number(float),
    "double": _is_number(float),
    "decimal": _is_number(float),
    "datetime": _is_datetime,
}


def _is_int(value: str) -> bool:
    return re.fullmatch(r"-?\d+", value) is not None


ARG_CONSTRAINTS: dict[str, Callable[[str, int], bool]] = {
    "minlength": lambda v, n: len(v) >= n,
    "maxlength": lambda v, n: len(v) <= n,
    "length": lambda v, n: len(v) == n,
    "min": lambda v, n: _is_int(v) and int(v) >= n,
    "max": lambda v, n: _is_int(v) and int(v) <= n,
}

_PARAM = re.compile(r"^\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\((-?\d+)\))?)?(\?)?\}$")


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    param: str | None = None
    constraint: str | None = None
    constraint_arg: int | None = None
    optional: bool = False
    catch_all: bool = False

    @property
    def rank(self) -> int:
        """Lower ranks are tried first: literal, constrained, plain, optional, catch-all."""
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        if self.optional:
            return 3
        return 1 if self.constraint else 2

    def allows(self, value: str) -> bool:
        if self.constraint is None:
            return True
        if self.constraint_arg is not None:
            return ARG_CONSTRAINTS[self.constraint](value, self.constraint_arg)
        return CONSTRAINTS[self.constraint](value)


@dataclass(frozen=True)
class Route(Generic[T]):
    template: str
    segments: tuple[Segment, ...]
    methods: frozenset[str]
    target: T

    def match(self, parts: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for i, seg in enumerate(self.segments):
            if seg.catch_all:
                if parts[i:]:
                    values[seg.param or ""] = "/".join(parts[i:])
                return values
            if i >= len(parts):
                if seg.optional and all(s.optional or s.catch_all for s in self.segments[i:]):
                    return values
                return None
            part = parts[i]
            if seg.literal is not None:
                if part.lower() != seg.literal.lower():
                    return None
                continue
            if seg.constraint and not seg.allows(part):
                return None
            values[seg.param or ""] = part
        return values if len(parts) == len(self.segments) else None


def parse_template(template: str) -> tuple[Segment, ...]:
    """Parse a route template; a constraint funchost does not know is an error."""
    segments: list[Segment] = []
    raw_parts = [p for p in template.strip("/").split("/") if p]
    for index, part in enumerate(raw_parts):
        if "{" not in part and "}" not in part:
            segments.append(Segment(literal=part))
            continue
        match = _PARAM.match(part)
        if not match:
            raise ConfigError(f"route {template!r}: segment {part!r} is not supported")
        star, name, constraint, arg, optional = match.groups()
        known = ARG_CONSTRAINTS if arg is not None else CONSTRAINTS
        if constraint and constraint.lower() not in known:
            raise ConfigError(f"route {template!r}: unknown constraint {constraint!r}")
        if star and index != len(raw_parts) - 1:
            raise ConfigError(f"route {template!r}: a catch-all must be the last segment")
        segments.append(
            Segment(
                param=name,
                constraint=constraint.lower() if constraint else None,
                constraint_arg=int(arg) if arg is not None else None,
                optional=bool(optional),
                catch_all=bool(star),
            )
        )
    for i, seg in enumerate(segments):
        if seg.optional and any(not (s.optional or s.catch_all) for s in segments[i + 1 :]):
            raise ConfigError(f"route {template!r}: only trailing parameters can be optional")
    return tuple(segments)


class RouteTable(Generic[T]):
    """Finds the route for a path and method; tells 404 from 405."""

    def __init__(self, prefix: str = "api") -> None:
        self.prefix = prefix.strip("/")
        self.routes: list[Route[T]] = []

    def add(self, template: str, methods: list[str] | None, target: T) -> Route[T]:
        full = "/".join(p for p in (self.prefix, template.strip("/")) if p)
        allowed = frozenset(m.upper() for m in methods) if methods else frozenset()
        route = Route(full, parse_template(full), allowed, target)
        self.routes.append(route)
        self.routes.sort(key=lambda r: tuple(s.rank for s in r.segments) + (-1,))
        return route

    def find(self, method: str, path: str) -> tuple[Route[T], dict[str, str]] | int:
        """The matching route and its values, else 404 (no path) or 405 (no such method)."""
        parts = [p for p in path.strip("/").split("/") if p]
        path_matched = False
        for route in self.routes:
            values = route.match(parts)
            if values is None:
                continue
            path_matched = True
            if not route.methods or method.upper() in route.methods:
                return route, values
        return 405 if path_matched else 404
