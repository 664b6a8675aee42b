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
# An example error body per status: its most common code and message.
_ERROR_EXAMPLES = {
    400: ("INVALID_QASM", "Line 3: unknown gate 'foo'"),
    401: ("UNAUTHORIZED", "A valid API key is required"),
    403: ("FORBIDDEN", "This key may not do that"),
    404: ("NOT_FOUND", "Not found"),
    409: ("CONFLICT", "The resource's state does not allow this"),
    413: ("PAYLOAD_TOO_LARGE", "Request body is 2000000 bytes; the limit is 1048576"),
    422: ("VALIDATION_ERROR", "shots: Input should be greater than or equal to 1"),
    429: ("RATE_LIMITED", "Rate limit of 60 requests per minute exceeded"),
    500: ("INTERNAL_ERROR", "Internal error"),
    503: ("STORAGE_UNAVAILABLE", "Storage is unavailable; retry later"),
}
_TAGS = {
    "health": "Probes: no key needed",
    "jobs": "Circuits on the local Aer simulator, through the job queue",
    "compat": "The paths the vendor's Python clients call (qcos-sdk 2.1, softqcos-sdk 3.13): "
    "doors of the operations above",
    "suppliers": "Circuits on IBM Quantum, Azure Quantum and AWS Braket (emulated without "
    "credentials)",
    "network": "v2: routing across every backend, fan-out and aggregation of counts",
    "rerank": "Choosing k relevant and diverse candidates, classically or by QAOA",
    "account": "The caller's account, usage and the tiers",
    "admin": "Users and API keys (admin key only)",
    "ledger": "Usage entries, chargeback, budgets and signed evidence",
    "legal": "The operator's details, legal documents and the license",
    "webhooks": "Signed deliveries of your job events to a URL of yours",
    "meta": "This API's description, in JSON and in the browser",
}
_EXAMPLE_REQUEST_ID = "5f2b8c1e9d7a4e3f8a6b0c2d4e6f8a1b"


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
    description="Generated from the same operations and models the handlers validate with, so what "
    "is documented is what is enforced. Rendered by `/docs` and `/redoc`.",
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
        answer = example(op.response, "serialization")
        if op.envelope:
            schema = _enveloped(True, {"data": schema})
            answer = {"success": True, "data": answer}
        ok["content"] = {"application/json": {"schema": schema, "example": answer}}
    for media_type in op.media_types:
        if media_type != "application/json":
            ok.setdefault("content", {})[media_type] = {"schema": {"type": "string"}}
    spec["responses"][str(op.status)] = ok
    errors = {*op.errors, 500} | ({401} if op.auth is not Auth.PUBLIC else set())
    error_schema = ref(ErrorBody, "serialization")
    if op.envelope:
        error_schema = {"allOf": [error_schema, _enveloped(False, {})]}
    for status in sorted(errors):
        code, detail = _ERROR_EXAMPLES.get(status, ("ERROR", "Error"))
        error_example: dict[str, Any] = {"success": False} if op.envelope else {}
        error_example |= {"detail": detail, "error_code": code, "request_id": _EXAMPLE_REQUEST_ID}
        spec["responses"][str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": error_schema, "example": error_example}},
        }
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": ref(op.body, "validation"),
                    "example": example(op.body, "validation"),
                }
            },
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


def example(model: type[BaseModel], mode: JsonSchemaMode) -> Any:
    """An example of `model`: its own `examples` when it declares some, else one built from its
    JSON schema (each field's example, default, first enum value or a value of its type). A
    request's example holds its required fields; an answer's, every field."""
    schema = model.model_json_schema(mode=mode)
    return _example_of(schema, schema.get("$defs", {}), every_field=mode == "serialization")


def _example_of(schema: dict[str, Any], defs: dict[str, Any], *, every_field: bool) -> Any:
    if "$ref" in schema:
        return _example_of(defs[schema["$ref"].rsplit("/", 1)[1]], defs, every_field=every_field)
    for key in ("examples", "enum"):
        if schema.get(key):
            return schema[key][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return _example_of(branches[0], defs, every_field=every_field)
    if "allOf" in schema:
        return _example_of(schema["allOf"][0], defs, every_field=every_field)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        properties = schema.get("properties", {})
        if not properties and isinstance(schema.get("additionalProperties"), dict):
            return {"name": _example_of(schema["additionalProperties"], defs, every_field=True)}
        return {
            name: _example_of(prop, defs, every_field=every_field)
            for name, prop in properties.items()
            if name in required or every_field
        }
    if kind == "array":
        item = _example_of(schema.get("items", {}), defs, every_field=every_field)
        return [item] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "number":
        return schema.get("minimum", 1.0)
    if kind == "boolean":
        return True
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2026-11-21T10:00:00Z"
        return "string".ljust(schema.get("minLength", 0), "x")
    return None


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
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
