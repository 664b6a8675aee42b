"""`/openapi.json` documents exactly what the app serves."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.api import BLUEPRINTS, docs, fallback, openapi
from shared.http import OPERATIONS
from shared.services import Services


def served_routes() -> set[tuple[str, str]]:
    """(METHOD, /path) of every HTTP function registered the way function_app registers them."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for blueprint in BLUEPRINTS:
        app.register_functions(blueprint)
    routes = set()
    for fn in app.get_functions():
        if fn.get_function_name() == fallback.FUNCTION_NAME:  # every path and method, no operation
            continue
        for binding in json.loads(fn.get_function_json())["bindings"]:
            if binding["type"] == "httpTrigger":
                path = "/" + binding["route"]
                path = "/" if path.startswith("/{ignored:maxlength(0)?}") else path
                for method in binding["methods"]:
                    routes.add((method.upper(), path))
    return routes


def test_the_fallback_is_the_http_function_the_host_tries_last() -> None:
    # given the app's HTTP functions
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for blueprint in BLUEPRINTS:
        app.register_functions(blueprint)
    http_functions = {
        fn.get_function_name(): binding
        for fn in app.get_functions()
        for binding in json.loads(fn.get_function_json())["bindings"]
        if binding["type"] == "httpTrigger"
    }
    # when they are ordered as the host orders them (FunctionMetadataManager: by name,
    # OrdinalIgnoreCase, which compares upper-cased) and matched in that order
    order = sorted(http_functions, key=str.upper)
    # then the fallback comes last, and takes every path and every method
    assert order[-1] == fallback.FUNCTION_NAME
    assert http_functions[fallback.FUNCTION_NAME]["route"] == "{*path}"
    assert "methods" not in http_functions[fallback.FUNCTION_NAME]


def test_every_route_azure_keeps_for_itself_has_a_door_under_api_v1() -> None:
    # given the routes the Functions host refuses to an app, and answers itself: those that
    # begin with `admin` or `runtime` (its admin API and webhooks)
    reserved = {
        (method, path)
        for method, path in served_routes()
        if path.lower().startswith(("/admin", "/runtime"))
    }
    assert reserved, "the reference's /admin/users should be served (locally)"
    # then each is served under /api/v1 too, with the same method, so a deployment has them
    missing = {(m, p) for m, p in reserved if (m, f"/api/v1{p}") not in served_routes()}
    assert not missing


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


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def test_every_operation_has_a_summary_a_description_and_its_security() -> None:
    spec = openapi.build_spec()
    for name, op in _operations(spec):
        assert op["summary"].strip(), name
        assert op["description"].strip() and op["description"] != op["summary"], name
        public = not any(str(status) == "401" for status in op["responses"])
        expected = [] if public else [{"ApiKeyHeader": []}, {"Bearer": []}]
        assert op["security"] == expected, name


def test_every_body_and_answer_has_an_example_its_model_accepts() -> None:
    spec = openapi.build_spec()
    by_name = {f"{op.method} {op.path}": op for op in OPERATIONS.values()}
    for name, doc in _operations(spec):
        op = by_name[name]
        if op.body is not None:
            content = doc["requestBody"]["content"]["application/json"]
            op.body.model_validate(content["example"])
            # a request's example is written for it, not made up from its types
            assert op.body.model_json_schema().get("examples"), name
        if op.response is not None:
            ok = doc["responses"][str(op.status)]["content"]["application/json"]["example"]
            op.response.model_validate(ok["data"] if op.envelope else ok)


def test_every_error_response_has_an_example_of_the_standard_body() -> None:
    spec = openapi.build_spec()
    for name, op in _operations(spec):
        errors = {s: r for s, r in op["responses"].items() if s.startswith(("4", "5"))}
        assert "500" in errors, name
        for status, response in errors.items():
            example = response["content"]["application/json"]["example"]
            assert {"detail", "error_code", "request_id"} <= set(example), (name, status)
            assert example["error_code"].isupper(), (name, status)


def test_docs_pages_load_their_assets_from_this_app_only(http: Callable[..., Any]) -> None:
    pages = {"/docs": docs.swagger_ui, "/redoc": docs.redoc}
    for path, function in pages.items():
        page = http(function, "GET", path)
        assert page.status == 200 and "<html" in page.body, path
        loaded = [page.body]
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.body)
        assert sources, path
        for source in sources:
            assert source.startswith("/docs/assets/"), (path, source)
            name = source.rsplit("/", 1)[1]
            asset = http(docs.docs_asset, "GET", source, route_params={"name": name})
            assert asset.status == 200 and len(asset.body) > 100, source
            assert asset.headers["Cache-Control"].startswith("public")
            loaded.append(asset.body)
        assert any('"/openapi.json"' in text for text in loaded), path  # what they render
    bundle = http(
        docs.docs_asset,
        "GET",
        "/docs/assets/swagger-ui-bundle.js",
        route_params={"name": "swagger-ui-bundle.js"},
    )
    assert "SwaggerUIBundle" in bundle.body and len(bundle.body) > 500_000


def test_a_file_that_is_not_a_docs_asset_is_404(http: Callable[..., Any]) -> None:
    for name in ("..%2F..%2Fconfig.py", "swagger-ui-bundle.js.map", "LICENSE", ""):
        answer = http(docs.docs_asset, "GET", f"/docs/assets/{name}", route_params={"name": name})
        assert answer.status == 404, name
        assert answer.body["error_code"] == "NOT_FOUND"


def test_every_operation_is_under_a_described_tag() -> None:
    spec = openapi.build_spec()
    described = {tag["name"] for tag in spec["tags"] if tag["description"]}
    for name, op in _operations(spec):
        assert set(op["tags"]) <= described, name
