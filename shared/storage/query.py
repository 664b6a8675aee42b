"""Table queries: OData string literals, and pages with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared.errors import ValidationFailed


def literal(text: str) -> str:
    """`text` as an OData string literal (quotes doubled): safe to put in a filter."""
    return "'" + text.replace("'", "''") + "'"


def page(
    table: Any, query: str, page_size: int, cursor: str | None, select: list[str] | None = None
) -> tuple[list[Any], str | None]:
    """One page of `query`'s rows (in storage order: partition, then row key) and the cursor of
    the next page (None at the end). Raises `ValidationFailed` for a cursor this did not make."""
    token = _token(cursor) if cursor else None
    pages = table.query_entities(query, results_per_page=page_size, select=select).by_page(
        continuation_token=token
    )
    rows = list(next(pages, []))
    following = pages.continuation_token
    return rows, _cursor(following) if following else None


def _cursor(token: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def _token(cursor: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        token = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("cursor: not a cursor this API gave (value_error)") from exc
    if not isinstance(token, dict) or not all(isinstance(v, str | None) for v in token.values()):
        raise ValidationFailed("cursor: not a cursor this API gave (value_error)")
    return token
