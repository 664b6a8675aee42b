"""The request pipeline every HTTP function goes through.

An `Operation` describes one endpoint once: its route, its request and response models, its
auth. `Operation.route(bp)` registers the function (the handler keeps the exact signature the
worker checks against its bindings) and records the operation for `/openapi.json`.
`handle(req, op, call)` then owns, in order: the request id, the body-size cap, authentication,
validation, the call, the mapping of errors to the standard body, and the headers; all of it in
one span (`shared.telemetry`), with the request id and the key's public id bound to its logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared import idempotency, telemetry
from shared.accounts.service import Admission, Principal
from shared.errors import (
    ApiError,
    Conflict,
    InvalidJson,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    to_api_error,
)

logger = logging.getLogger(__name__)

B = TypeVar("B", bound=BaseModel | None)
F = TypeVar("F", bound=Callable[..., Any])

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
JSON = "application/json"


class Auth(Enum):
    PUBLIC = "public"
    USER = "user"
    ADMIN = "admin"
    USER_OR_ADMIN = "user_or_admin"  # a user's key, or the admin key (sees everyone's)


@dataclass(frozen=True)
class Operation:
    """One endpoint: what it takes, what it answers, who may call it."""

    method: str
    path: str  # the full path, `{name}` for parameters
    summary: str
    response: type[BaseModel] | None
    body: type[BaseModel] | None = None
    status: int = 200
    auth: Auth = Auth.USER
    errors: tuple[int, ...] = ()
    description: str = ""
    tag: str = "jobs"
    route_template: str | None = None  # when the host needs another template for `path`
    # v2: answers `{"success": true, "data": ...}` and errors with `"success": false`
    envelope: bool = False
    # What a success may be: JSON (the `response` model) and/or text documents (e.g. text/csv)
    media_types: tuple[str, ...] = ("application/json",)
    # Creates a job: honours `Idempotency-Key` (shared/idempotency.py)
    idempotent: bool = False
    # The query string's parameters, validated like the body (unknown ones are refused)
    query: type[BaseModel] | None = None

    def door(self, path: str, why: str, **changes: Any) -> Operation:
        """This operation served at `path` too: the same contract under another path (a
        client's or a platform's), documented with `why` before its own description."""
        return replace(self, path=path, description=f"{why}\n\n{self.description}", **changes)

    def route(self, bp: func.Blueprint) -> Callable[[F], F]:
        """Register the decorated function on `bp` for this operation's method and path."""
        register(self)
        decorator: Callable[[F], F] = bp.route(
            route=self.route_template or self.path.lstrip("/"),
            methods=[self.method],
            auth_level=func.AuthLevel.ANONYMOUS,  # API keys are checked in handle()
        )

        def record(function: F) -> F:
            HANDLERS[(self.method, self.path)] = function
            return decorator(function)

        return record


OPERATIONS: dict[tuple[str, str], Operation] = {}
# The function of each operation, for the fallback's HEAD (answered by the GET function)
HANDLERS: dict[tuple[str, str], Callable[..., Any]] = {}


def register(op: Operation) -> None:
    OPERATIONS[(op.method, op.path)] = op


@dataclass
class RequestContext(Generic[B]):
    request: func.HttpRequest
    request_id: str
    principal: Principal | None
    body: B
    params: Mapping[str, str]
    query: Any = None  # an instance of the operation's `query` model

    @property
    def user(self) -> Principal:
        """The authenticated caller (only on USER and ADMIN operations)."""
        assert self.principal is not None
        return self.principal


@dataclass
class Reply:
    """A result with a status or headers other than the operation's defaults, or a text
    document (`body` a str, sent as `media_type`)."""

    body: BaseModel | Mapping[str, Any] | str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = JSON


Call = Callable[[RequestContext[Any]], BaseModel | Reply | Mapping[str, Any]]
# Answers from the caller's job `job_id` (made by an earlier attempt under the same
# `Idempotency-Key`); raises `NotFound` (JOB_NOT_FOUND) when there is none.
Existing = Callable[[RequestContext[Any], str], BaseModel | Reply | Mapping[str, Any]]


def handle(
    req: func.HttpRequest, op: Operation, call: Call, *, existing: Existing | None = None
) -> func.HttpResponse:
    """Run `call` for `req` under `op`'s contract; never raises.

    In order: request id, body cap, authentication with the key's rate limit, validation,
    `Idempotency-Key` (a replay answers here), the call, errors to the standard body. Every
    answer to an authenticated user carries the rate-limit headers of its one decision.

    `existing`, for an idempotent operation whose body names its job in `job_id`: under an
    `Idempotency-Key`, a body that names no job gets the key's job id (every attempt the
    same), and a retry whose first attempt made the job (then died, or is still running, or
    raced it) is answered by `existing` from that job instead of making another.
    """
    request_id = _request_id(req)
    with (
        telemetry.bound(request_id=request_id),
        telemetry.request(op.method, op.path, req.url, request_id) as span,
    ):
        response = _answer(req, op, call, existing, request_id, span)
        span.respond(response.status_code)
    return response


def _answer(
    req: func.HttpRequest,
    op: Operation,
    call: Call,
    existing: Existing | None,
    request_id: str,
    span: telemetry.Span,
) -> func.HttpResponse:
    limit_headers: dict[str, str] = {}
    claim = None
    try:
        raw = _capped_body(req)
        admission = _admit(req, op)
        principal = admission.principal if admission else None
        if principal is not None:  # the key's public id, never the key
            telemetry.bind(key_id=principal.key_id)
            span.set("key_id", principal.key_id)
        if admission is not None and admission.rate is not None:
            limit_headers = admission.rate.headers()
        ctx: RequestContext[Any] = RequestContext(
            request=req,
            request_id=request_id,
            principal=principal,
            body=_parse_body(raw, op),
            params=req.route_params,
            query=_parse_query(req, op),
        )
        if op.idempotent and principal is not None and req.headers.get(idempotency.HEADER):
            begun = _idempotency().begin(
                principal.user_id,
                req.headers[idempotency.HEADER],
                idempotency.fingerprint(req.method, _path(req), raw),
            )
            if isinstance(begun, idempotency.Stored):
                return _replay(begun, request_id, limit_headers)
            claim = begun
            result = _call_claimed(ctx, call, existing, claim)
        else:
            result = call(ctx)
        response = _success(result, op, request_id, limit_headers)
    except Exception as exc:  # every failure leaves as the standard body
        error = to_api_error(exc)
        error.headers = {**limit_headers, **error.headers}
        response = error_response(error, request_id, envelope=op.envelope)
    if claim is not None:
        _idempotency().finish(
            claim,
            response.status_code,
            response.get_body().decode("utf-8"),
            response.mimetype or JSON,
            dict(response.headers),
        )
    return response


def _call_claimed(
    ctx: RequestContext[Any],
    call: Call,
    existing: Existing | None,
    claim: idempotency.Claim,
) -> BaseModel | Reply | Mapping[str, Any]:
    """`call` under an `Idempotency-Key` it holds as `claim`. With `existing`, and no job id in
    the body, the body gets the key's job id, and the job an earlier attempt made under the
    key answers instead: looked up when the key was found pending, and when the call finds
    its id taken (a racing attempt)."""
    recover = existing is not None and getattr(ctx.body, "job_id", "") is None
    if recover:
        ctx.body = ctx.body.model_copy(update={"job_id": claim.job_id})
    if recover and claim.resumed:
        assert existing is not None
        try:
            return existing(ctx, claim.job_id)
        except NotFound:
            pass  # the earlier attempt made no job (yet)
    if not claim.owned:
        raise idempotency.in_use()
    try:
        return call(ctx)
    except Conflict as exc:
        if not recover or exc.error_code != "DUPLICATE_JOB_ID":
            raise
    assert existing is not None
    return existing(ctx, claim.job_id)  # a racing attempt made it first


def _success(
    result: BaseModel | Reply | Mapping[str, Any],
    op: Operation,
    request_id: str,
    limit_headers: Mapping[str, str],
) -> func.HttpResponse:
    reply = result if isinstance(result, Reply) else Reply(result)
    headers = {**limit_headers, **reply.headers}
    answer, status = reply.body, reply.status or op.status
    if isinstance(answer, str):
        return text_response(answer, reply.media_type, status, request_id, headers)
    if op.envelope:
        data = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
        answer = {"success": True, "data": data}
    return json_response(answer, status, request_id, headers)


def _replay(
    stored: idempotency.Stored, request_id: str, limit_headers: Mapping[str, str]
) -> func.HttpResponse:
    headers = {**stored.headers, **limit_headers, idempotency.REPLAYED: "true"}
    return text_response(stored.body, stored.media_type, stored.status, request_id, headers)


def _path(req: func.HttpRequest) -> str:
    return urlsplit(req.url).path


def _idempotency() -> idempotency.Idempotency:
    from shared.services import services

    return services().idempotency


async def handle_async(req: func.HttpRequest, op: Operation, call: Call) -> func.HttpResponse:
    """`handle` for an async function (one with a durable client binding): the pipeline and
    its blocking storage calls run in a worker thread, off the host's event loop."""
    return await asyncio.to_thread(handle, req, op, call)


def json_response(
    body: BaseModel | Mapping[str, Any],
    status: int,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> func.HttpResponse:
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return func.HttpResponse(
        json.dumps(data, separators=(",", ":")),
        status_code=status,
        mimetype=JSON,
        headers={**(headers or {}), "X-Request-ID": request_id},
    )


def text_response(
    text: str,
    media_type: str,
    status: int,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> func.HttpResponse:
    return func.HttpResponse(
        text,
        status_code=status,
        headers={**(headers or {}), "X-Request-ID": request_id},
        mimetype=media_type,
        charset="utf-8",
    )


def error_response(
    error: ApiError, request_id: str, *, envelope: bool = False
) -> func.HttpResponse:
    body: dict[str, Any] = {"success": False} if envelope else {}
    body |= {"detail": error.detail, "error_code": error.error_code, "request_id": request_id}
    body |= error.extra
    return json_response(body, error.status, request_id, error.headers)


def _request_id(req: func.HttpRequest) -> str:
    given = req.headers.get("x-request-id", "")
    return given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex


def presented_key(req: func.HttpRequest) -> str | None:
    """The API key from `X-API-Key` or `Authorization: Bearer`."""
    key = req.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _admit(req: func.HttpRequest, op: Operation) -> Admission | None:
    if op.auth is Auth.PUBLIC:
        return None
    from shared.services import services

    return services().accounts.admit(
        presented_key(req),
        admin=op.auth is Auth.ADMIN,
        admin_allowed=op.auth is Auth.USER_OR_ADMIN,
    )


def _capped_body(req: func.HttpRequest) -> bytes:
    from shared.config import get_settings

    raw = req.get_body() or b""
    limit = get_settings().limits.max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body is {len(raw)} bytes; the limit is {limit}")
    return raw


def _parse_body(raw: bytes, op: Operation) -> BaseModel | None:
    """The body as `op.body`, in pydantic's strict mode: a JSON value must have the field's
    JSON type (`true` or `"1024"` is no integer, `"0.5"` no number, `1` no boolean). Strict
    JSON still takes strings for the types JSON has none of: date-times, UUIDs, enums (their
    values) and decimals (`"500.00"`)."""
    if op.body is None:
        return None
    if not raw.strip():
        raise InvalidJson("Request body must be a JSON object")
    try:
        return op.body.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _parse_query(req: func.HttpRequest, op: Operation) -> BaseModel | None:
    """The query string as `op.query`, in lax mode: its values are all text (`page_size=50`)."""
    if op.query is None:
        return None
    try:
        return op.query.model_validate(dict(req.params))
    except ValidationError as exc:
        raise validation_error(exc, where="query") from None


def _loc_part(part: str | int) -> str:
    """One step of an error's location; a dict key is the caller's text: at most 32 characters
    of it."""
    text = str(part)
    return text if len(text) <= 32 else text[:29] + "..."


def validation_error(exc: ValidationError, where: str = "body") -> ApiError:
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return InvalidJson("Request body is not valid JSON")
    if any(e["type"] == "model_type" and not e["loc"] for e in errors):
        return InvalidJson("Request body must be a JSON object")
    parts = []
    for e in errors[:10]:
        loc = ".".join(_loc_part(p) for p in e["loc"]) or where
        parts.append(f"{loc}: {e['msg']} ({e['type']})")
    return ValidationFailed("; ".join(parts))
