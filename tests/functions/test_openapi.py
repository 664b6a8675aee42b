"""`/openapi.json` documents exactly what the app serves."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.api import BLUEPRINTS, openapi
from shared.services import Services


def served_routes() -> set[tuple[str, str]]:
    """(METHOD, /path) of every HTTP function registered the way function_app registers them."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for blueprint in BLUEPRINTS:
        app.register_functions(blueprint)
    routes = set()
    for fn in app.get_functions():
        for binding in json.loads(fn.get_function_json())["bindings"]:
            if binding["type"] == "httpTrigger":
                path = "/" + binding["route"]
                path = "/" if path.startswith("/{ignored:maxlength(0)?}") else path
                for method in binding["methods"]:
                    routes.add((method.upper(), path))
    return routes


def test_function_app_registers_the_same_blueprints_as_this_test() -> None:
    source = (openapi.__file__.rsplit("/shared/", 1)[0]) + "/function_app.py"
    text = open(source, encoding="utf-8").read()
    assert re.search(r"for blueprint in BLUEPRINTS:\s+app\.register_functions\(blueprint\)", text)


def test_every_http_function_is_in_the_spec_and_every_spec_path_is_served(
    services_env: Services, http: Callable[..., Any]
) -> None:
    answer = http(openapi.openapi_json, "GET", "/openapi.json")
    assert answer.status == 200
    spec = answer.body
    assert spec["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert documented == served_routes()


def test_operations_carry_schemas_errors_and_security(
    services_env: Services, http: Callable[..., Any]
) -> None:
    spec = http(openapi.openapi_json, "GET", "/openapi.json").body
    execute = spec["paths"]["/api/v1/execute"]["post"]
    schema_ref = execute["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert request["additionalProperties"] is False
    assert request["properties"]["shots"]["maximum"] == 100_000
    assert {"202", "400", "401", "422", "503"} <= set(execute["responses"])
    assert execute["security"] == [{"ApiKeyHeader": []}, {"Bearer": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    schemes = spec["components"]["securitySchemes"]
    assert (
        schemes["ApiKeyHeader"]["name"] == "X-API-Key" and schemes["Bearer"]["scheme"] == "bearer"
    )
