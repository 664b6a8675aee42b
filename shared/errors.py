"""One error hierarchy and one mapping to HTTP.

Every error a user can see is an `ApiError`: it carries its HTTP status and a stable
`error_code`, and its message is safe to show (it never echoes secrets, keys or input).
`to_api_error` turns anything raised below the API into one of these, in one place.
"""

from __future__ import annotations

import logging
import unicodedata
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of every error answered with the standard body `{detail, error_code, request_id}`."""

    status: int = 500  # the class's status; an instance may answer another (`status=`)
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        detail: str,
        *,
        error_code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(safe_text(detail))
        if status is not None:
            self.status = status
        self.detail = detail
        self.error_code = error_code or self.code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # more fields of the error body (never secrets)

    @property
    def detail(self) -> str:
        """The message shown to the caller: never a control character (see `safe_text`)."""
        return self._detail

    @detail.setter
    def detail(self, text: str) -> None:
        self._detail = safe_text(text)


class BadRequest(ApiError):
    status = 400
    code = "BAD_REQUEST"


Choice = TypeVar("Choice", bound=StrEnum)


def parse_choice(kind: type[Choice], name: str, *, what: str, plural: str, code: str) -> Choice:
    """The member of `kind` called `name` (case and surrounding spaces aside); 400 `code`
    naming the choices otherwise ("Unknown strategy 'x'; strategies: fastest, ...")."""
    try:
        return kind(name.strip().lower())
    except ValueError:
        names = ", ".join(member.value for member in kind)
        raise BadRequest(
            f"Unknown {what} {name[:40]!r}; {plural}: {names}", error_code=code
        ) from None


class InvalidJson(BadRequest):
    code = "INVALID_JSON"


class InvalidQasm(BadRequest):
    code = "INVALID_QASM"


class LimitExceeded(BadRequest):
    """Over a limit; `error_code` names the limit (e.g. QUBIT_LIMIT_EXCEEDED)."""

    code = "LIMIT_EXCEEDED"


class CircuitDoesNotFit(BadRequest):
    """The circuit cannot run on the chosen backend (qubits, an operation it lacks)."""

    code = "CIRCUIT_DOES_NOT_FIT"


class Unauthorized(ApiError):
    status = 401
    code = "UNAUTHORIZED"

    def __init__(self, detail: str = "A valid API key is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="qcos"'})


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ApiError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class ValidationFailed(ApiError):
    status = 422
    code = "VALIDATION_ERROR"


class RateLimited(ApiError):
    status = 429
    code = "RATE_LIMITED"


class InternalError(ApiError):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, detail: str = "Internal server error") -> None:
        super().__init__(detail)


class ServiceUnavailable(ApiError):
    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class StorageUnavailable(ServiceUnavailable):
    """Storage did not answer; the request changed nothing and may be retried."""

    code = "STORAGE_UNAVAILABLE"

    def __init__(self, detail: str = "Storage is unavailable; retry shortly") -> None:
        super().__init__(detail)


# Unicode categories never shown as they are: controls (C0, DEL, C1), format characters (the
# bidirectional overrides, zero-width ones) and surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe_text(message: str) -> str:
    """`message` with no control characters: white space (tabs, line breaks) becomes single
    spaces and every other control or format character its escape (`\\x00`, `\\u202e`), so a
    detail that quotes the caller's input (a NUL in a circuit) shows what was there without
    carrying it. Every `ApiError.detail` goes through here."""
    text = " ".join(message.split())
    if text.isprintable():  # the usual case: nothing to escape
        return text
    return "".join(
        _escaped(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text
    )


def one_line(message: str, limit: int = 300) -> str:
    """`message` on one line, without control characters (`safe_text`), and at most `limit`
    characters: a safe `detail` from a library's error text (which may quote the user's source)."""
    text = safe_text(message)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_storage_outage(exc: BaseException) -> bool:
    """True for a transport failure or a 5xx from Azure Storage (the request may be retried)."""
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, HttpResponseError) and status is not None and status >= 500


def to_api_error(exc: BaseException) -> ApiError:
    """The `ApiError` to answer for `exc`: itself, 503 for a storage outage, else a generic 500."""
    if isinstance(exc, ApiError):
        return exc
    if is_storage_outage(exc):
        logger.warning("storage unavailable: %s", type(exc).__name__)
        return StorageUnavailable()
    logger.exception("unhandled error", exc_info=exc)
    return InternalError()
