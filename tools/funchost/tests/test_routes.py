"""RouteTable: how a request path and method find their function (or 404 / 405)."""

from __future__ import annotations

import re

import pytest

from funchost.routes import Route, RouteTable
from funchost.settings import ConfigError


def table(*routes: tuple[str, list[str] | None], prefix: str = "api") -> RouteTable[str]:
    """A table whose targets are the templates themselves."""
    result: RouteTable[str] = RouteTable(prefix)
    for template, methods in routes:
        result.add(template, methods, template)
    return result


def target(found: tuple[Route[str], dict[str, str]] | int) -> tuple[str, dict[str, str]]:
    """The template and values of a match (fails the test on a 404 or 405)."""
    assert not isinstance(found, int), f"expected a route, got {found}"
    route, values = found
    return route.target, values


def test_a_literal_segment_beats_a_parameter_whatever_the_order_of_registration() -> None:
    # given a parameter route registered before a literal one
    routes = table(("items/{name}", None), ("items/latest", None))
    # when both could match
    # then the literal wins, and the parameter takes everything else
    assert target(routes.find("GET", "/api/items/latest")) == ("items/latest", {})
    assert target(routes.find("GET", "/api/items/old")) == ("items/{name}", {"name": "old"})


def test_literal_segments_match_case_insensitively() -> None:
    # given a route spelled in mixed case
    routes = table(("Items/Latest", ["GET"]))
    # when it is requested in other cases, then it matches
    assert target(routes.find("get", "/API/items/LATEST")) == ("Items/Latest", {})


def test_a_constrained_parameter_beats_a_plain_one() -> None:
    # given items/{name} registered before items/{id:int}
    routes = table(("items/{name}", None), ("items/{id:int}", None))
    # then an integer goes to the constrained route and anything else to the plain one
    assert target(routes.find("GET", "/api/items/12")) == ("items/{id:int}", {"id": "12"})
    assert target(routes.find("GET", "/api/items/twelve")) == ("items/{name}", {"name": "twelve"})


@pytest.mark.parametrize(
    ("constraint", "accepted", "refused"),
    [
        ("int", ["0", "42", "-7", "2147483647"], ["4.2", "abc", "2147483648", "1e3"]),
        ("long", ["9223372036854775807", "-3"], ["9223372036854775808", "x"]),
        ("bool", ["true", "False"], ["yes", "1"]),
        ("alpha", ["abc", "XyZ"], ["abc1", "a-b"]),
        ("guid", ["6f9619ff-8b86-d011-b42d-00c04fc964ff"], ["6f9619ff", "not-a-guid"]),
        ("float", ["1.5", "-2", "3e8"], ["one", "1.2.3"]),
        ("datetime", ["2024-05-01", "2024-05-01T10:00:00"], ["yesterday", "2024-13-01"]),
    ],
)
def test_a_parameter_constraint_accepts_only_its_kind_of_value(
    constraint: str, accepted: list[str], refused: list[str]
) -> None:
    # given a single route with a constrained parameter
    routes = table((f"v/{{value:{constraint}}}", None))
    # then matching values are routed and others are not found
    for value in accepted:
        assert target(routes.find("GET", f"/api/v/{value}"))[1] == {"value": value}
    for value in refused:
        assert routes.find("GET", f"/api/v/{value}") == 404, value


def test_an_optional_trailing_parameter_may_be_left_out_but_extra_segments_are_not_found() -> None:
    # given greet/{name?}
    routes = table(("greet/{name?}", None))
    # then the name may be absent or present, but nothing may follow it
    assert target(routes.find("GET", "/api/greet")) == ("greet/{name?}", {})
    assert target(routes.find("GET", "/api/greet/ada")) == ("greet/{name?}", {"name": "ada"})
    assert routes.find("GET", "/api/greet/ada/lovelace") == 404


def test_a_catch_all_takes_the_remaining_segments_or_nothing() -> None:
    # given files/{*path}
    routes = table(("files/{*path}", None))
    # then the parameter holds the rest of the path, and an empty rest still matches
    assert target(routes.find("GET", "/api/files/a/b/c.txt")) == (
        "files/{*path}",
        {"path": "a/b/c.txt"},
    )
    assert target(routes.find("GET", "/api/files")) == ("files/{*path}", {})


def test_a_catch_all_comes_after_a_more_specific_route() -> None:
    # given a catch-all registered before a literal route, without a prefix
    routes = table(("{*anything}", None), ("health", None), prefix="")
    # then the literal route keeps its path and the catch-all gets the rest
    assert target(routes.find("GET", "/health")) == ("health", {})
    assert target(routes.find("GET", "/other/path")) == ("{*anything}", {"anything": "other/path"})


def test_a_route_that_ends_with_the_path_beats_one_whose_optional_parameter_is_left_out() -> None:
    # given items and items/{id?}, registered in either order (ASP.NET: 1.1 before 1.14)
    for order in (
        (("items/{id?}", None), ("items", None)),
        (("items", None), ("items/{id?}", None)),
    ):
        routes = table(*order)
        # when the path is items, then the route without the parameter answers
        assert target(routes.find("GET", "/api/items")) == ("items", {})
        # and a path with an id still goes to the optional route
        assert target(routes.find("GET", "/api/items/3")) == ("items/{id?}", {"id": "3"})


def test_an_unknown_path_is_404_and_a_known_path_with_a_wrong_method_is_405() -> None:
    # given a route that only takes POST
    routes = table(("jobs", ["POST"]))
    # then another path is not found, and another method on it is not allowed
    assert routes.find("GET", "/api/nothing") == 404
    assert routes.find("GET", "/api/jobs") == 405
    assert target(routes.find("post", "/api/jobs")) == ("jobs", {})


def test_a_route_without_methods_accepts_every_method() -> None:
    # given a route declaring no methods
    routes = table(("any", None))
    # then any method reaches it
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert target(routes.find(method, "/api/any"))[0] == "any"


def test_a_less_specific_route_answers_when_the_best_one_refuses_the_method() -> None:
    # given GET items/{id:int} and POST items/{name}
    routes = table(("items/{id:int}", ["GET"]), ("items/{name}", ["POST"]))
    # when 42 is POSTed: the int route matches the path but not the method
    # then the plain route, which takes POST, answers
    assert target(routes.find("POST", "/api/items/42")) == ("items/{name}", {"name": "42"})
    assert routes.find("DELETE", "/api/items/42") == 405


def test_the_route_prefix_is_part_of_every_route_and_an_empty_prefix_means_none() -> None:
    # given the same route under the prefix api and under no prefix
    prefixed = table(("health", None), prefix="api")
    bare = table(("health", None), prefix="")
    # then each answers only at its own path
    assert target(prefixed.find("GET", "/api/health"))[0] == "health"
    assert prefixed.find("GET", "/health") == 404
    assert target(bare.find("GET", "/health"))[0] == "health"
    assert bare.find("GET", "/api/health") == 404


def test_a_trailing_slash_does_not_change_the_match() -> None:
    # given jobs/{id}
    routes = table(("jobs/{id}", None))
    # when the path ends with a slash, then it still matches
    assert target(routes.find("GET", "/api/jobs/7/")) == ("jobs/{id}", {"id": "7"})


def test_the_site_root_is_served_by_an_optional_parameter_of_length_zero() -> None:
    # given the root route the docs suggest beside a literal route, with no prefix
    routes = table(("{ignored:maxlength(0)?}", ["GET"]), ("health", ["GET"]), prefix="")
    # then "/" reaches the root route, "/health" its own, and any other segment nothing
    assert target(routes.find("GET", "/"))[0] == "{ignored:maxlength(0)?}"
    assert target(routes.find("GET", "/health"))[0] == "health"
    assert routes.find("GET", "/other") == 404


@pytest.mark.parametrize(
    ("template", "path", "found"),
    [
        ("c/{code:length(3)}", "/c/abc", True),
        ("c/{code:length(3)}", "/c/abcd", False),
        ("c/{code:minlength(2)}", "/c/a", False),
        ("n/{n:min(5)}", "/n/5", True),
        ("n/{n:max(5)}", "/n/6", False),
        ("n/{n:max(5)}", "/n/x", False),
    ],
)
def test_a_constraint_with_an_argument_bounds_the_value(
    template: str, path: str, found: bool
) -> None:
    routes = table((template, None), prefix="")
    assert (routes.find("GET", path) != 404) is found


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("items/{id:number}", "unknown constraint 'number'"),
        ("items/{id:int(3)}", "unknown constraint 'int'"),
        ("files/{*path}/tail", "a catch-all must be the last segment"),
        ("greet/{name?}/tail", "only trailing parameters can be optional"),
        ("items/pre{id}", "is not supported"),
    ],
)
def test_a_template_funchost_cannot_honour_is_refused(template: str, message: str) -> None:
    # when a route with that template is added
    # then it is refused, saying why
    with pytest.raises(ConfigError, match=re.escape(message)):
        table((template, None))


def test_a_catch_all_for_every_method_is_tried_last_and_takes_what_no_other_route_does() -> None:
    # given an app's routes and a catch-all for every method, the catch-all registered first
    routes = table(
        ("{*path}", None),
        ("v1/execute", ["POST"]),
        ("v1/jobs/{id}", ["DELETE"]),
        ("v1/{supplier}/providers", ["GET"]),
        prefix="",
    )
    # then each route keeps its own requests, literal segments before parameters
    assert target(routes.find("POST", "/v1/execute")) == ("v1/execute", {})
    assert target(routes.find("DELETE", "/v1/jobs/7")) == ("v1/jobs/{id}", {"id": "7"})
    assert target(routes.find("GET", "/v1/braket/providers"))[0] == "v1/{supplier}/providers"
    # and the catch-all takes unknown paths and the other routes' wrong methods (no 404/405)
    assert target(routes.find("GET", "/v1/execute")) == ("{*path}", {"path": "v1/execute"})
    assert target(routes.find("GET", "/v1/chemistry/x")) == ("{*path}", {"path": "v1/chemistry/x"})
    assert target(routes.find("OPTIONS", "/v1/jobs/7"))[0] == "{*path}"
    assert target(routes.find("POST", "/")) == ("{*path}", {})
