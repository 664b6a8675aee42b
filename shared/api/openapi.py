"""`GET /openapi.json`: OpenAPI 3.1, generated from the operations and the pydantic models the
handlers validate with (one source: what is documented is what is enforced)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import azure.functions as func
from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.config import get_settings
from shared.http import OPERATIONS, Auth, Operation, handle

bp = func.Blueprint()

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Bad request (INVALID_JSON, INVALID_QASM, a *_LIMIT_EXCEEDED code, ...)",
    401: "Missing, malformed, unknown or revoked API key (UNAUTHORIZED)",
    403: "Not allowed with this key (FORBIDDEN)",
    404: "Not found, or not yours",
    409: "Conflict with the resource's state",
    413: "Body or circuit too large",
    422: "Request fields invalid or unknown (VALIDATION_ERROR)",
    429: "Rate limited",
    500: "Internal error (never a stack trace)",
    503: "Storage unavailable; retry after Retry-After",
}


class ErrorBody(BaseModel):
    """The standard error body of every endpoint."""

    detail: str
    error_code: str = Field(examples=["VALIDATION_ERROR"])
    request_id: str


class OpenApiDocument(BaseModel):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


SPEC = Operation(
    "GET",
    "/openapi.json",
    "This API's OpenAPI 3.1 document",
    OpenApiDocument,
    auth=Auth.PUBLIC,
    tag="meta",
)


@SPEC.route(bp)
def openapi_json(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, SPEC, lambda ctx: build_spec())


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", f"{op.method} {op.path}")
    return re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_").lower()


def _operation(op: Operation, ref: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "description": op.description or op.summary,
        "tags": [op.tag],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", op.path)
        ],
        "responses": {},
    }
    if op.query is not None:
        schema = op.query.model_json_schema(by_alias=True)
        for name, prop in schema.get("properties", {}).items():
            spec["parameters"].append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", []),
                    "description": prop.get("description", ""),
                    "schema": {k: v for k, v in prop.items() if k != "description"},
                }
            )
    ok: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        schema = ref(op.response, "serialization")
        if op.envelope:
            schema = _enveloped(True, {"data": schema})
        ok["content"] = {"application/json": {"schema": schema}}
    for media_type in op.media_types:
        if media_type != "application/json":
            ok.setdefault("content", {})[media_type] = {"schema": {"type": "string"}}
    spec["responses"][str(op.status)] = ok
    errors = {*op.errors, 500} | ({401} if op.auth is not Auth.PUBLIC else set())
    error_schema = ref(ErrorBody, "serialization")
    if op.envelope:
        error_schema = {"allOf": [error_schema, _enveloped(False, {})]}
    for status in sorted(errors):
        spec["responses"][str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": error_schema}},
        }
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(op.body, "validation")}},
        }
    spec["security"] = [] if op.auth is Auth.PUBLIC else [{"ApiKeyHeader": []}, {"Bearer": []}]
    return spec


def _enveloped(success: bool, properties: dict[str, Any]) -> dict[str, Any]:
    """The v2 envelope: `{"success": <success>, ...properties}`."""
    return {
        "type": "object",
        "properties": {"success": {"const": success}, **properties},
        "required": ["success", *properties],
    }


@lru_cache(maxsize=1)
def build_spec() -> dict[str, Any]:
    """The document for every registered operation (built once per process)."""
    ops = sorted(OPERATIONS.values(), key=lambda o: (o.path, o.method))
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorBody, "serialization")}
    for op in ops:
        if op.body is not None:
            wanted.add((op.body, "validation"))
        if op.response is not None:
            wanted.add((op.response, "serialization"))
    refs, schemas = models_json_schema(
        sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1])), ref_template=_REF
    )

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "QCOS gateway",
            "version": get_settings().version,
            "description": "Run OpenQASM circuits on a local simulator or quantum clouds.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
