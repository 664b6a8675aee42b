"""`shared.storage.query`: OData string literals, and the cursors of pages, refused when they are
not the API's own (paging against Azurite is in tests/integration/test_storage_query.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from shared.errors import ValidationFailed
from shared.storage.query import literal, page


class Untouchable:
    """A table a refused cursor must never reach."""

    def query_entities(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("queried with a cursor the API did not give")


def cursor_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("user-1", "'user-1'"),
        ("O'Brien", "'O''Brien'"),
        ("' or PartitionKey ne '", "''' or PartitionKey ne '''"),
        ("", "''"),
    ],
)
def test_a_literal_is_quoted_with_its_quotes_doubled(text: str, quoted: str) -> None:
    assert literal(text) == quoted


def test_a_literal_never_closes_early_however_many_quotes_it_holds() -> None:
    # given text made to end a filter's string and add a clause
    quoted = literal("x' or RowKey gt '")
    # then between the outer quotes every quote is doubled: one literal, no clause
    inner = quoted[1:-1]
    assert quoted[0] == quoted[-1] == "'"
    assert inner.replace("''", "") == "x or RowKey gt "


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        cursor_of(b"not json"),
        cursor_of(b'["a", "list"]'),
        cursor_of(b'"a string"'),
        cursor_of(b'{"NextPartitionKey": 7}'),
        cursor_of(b'{"NextRowKey": {"nested": "x"}}'),
    ],
)
def test_a_cursor_the_api_did_not_give_is_a_422_before_anything_is_read(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        page(Untouchable(), "PartitionKey eq 'u'", 10, cursor)
    assert refused.value.status == 422
    assert refused.value.detail == "cursor: not a cursor this API gave (value_error)"
