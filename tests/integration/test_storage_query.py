"""`shared.storage.query` against Azurite: a query read a page at a time through the API's own
cursors, and literals that match exactly what they quote."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.errors import ValidationFailed
from shared.services import Services
from shared.storage.query import literal, page

TABLE = "querytest"


@pytest.fixture
def table(services_env: Services) -> Any:
    return services_env.storage.table(TABLE)


@pytest.fixture
def partition(table: Any) -> str:
    """A fresh partition of seven rows, `row-0` to `row-6`, and one of another partition."""
    key = f"p-{uuid.uuid4().hex}"
    for n in range(7):
        table.create_entity({"PartitionKey": key, "RowKey": f"row-{n}", "n": n})
    table.create_entity({"PartitionKey": key + "-other", "RowKey": "row-0", "n": 99})
    return key


def test_a_query_read_a_page_at_a_time_gives_every_row_once_in_order(
    table: Any, partition: str
) -> None:
    # given a query of seven rows, read three at a time
    query = f"PartitionKey eq {literal(partition)}"
    seen: list[str] = []
    cursors: list[str] = []
    cursor: str | None = None
    # when each page's cursor asks for the next
    while True:
        rows, cursor = page(table, query, 3, cursor, select=["RowKey"])
        seen.extend(row["RowKey"] for row in rows)
        if cursor is None:
            break
        cursors.append(cursor)
    # then every row came once, in key order, over three pages, the last without a cursor
    assert seen == [f"row-{n}" for n in range(7)]
    assert len(cursors) == 2
    assert all(c.isascii() and "=" not in c and "/" not in c and "+" not in c for c in cursors)


def test_a_page_at_the_end_has_no_cursor(table: Any, partition: str) -> None:
    rows, cursor = page(table, f"PartitionKey eq {literal(partition)}", 10, None)
    assert len(rows) == 7 and cursor is None


def test_a_literal_matches_exactly_what_it_quotes(table: Any, partition: str) -> None:
    # given a row whose key holds a quote
    table.create_entity({"PartitionKey": partition, "RowKey": "O'Brien"})
    # when it is looked up, and when text made to widen the filter is
    same = f"PartitionKey eq {literal(partition)} and RowKey eq "
    found, _ = page(table, same + literal("O'Brien"), 10, None)
    widened, _ = page(table, same + literal("x' or RowKey ne '"), 10, None)
    # then the one row is found, and the crafted text matches nothing
    assert [row["RowKey"] for row in found] == ["O'Brien"]
    assert widened == []


def test_a_cursor_changed_by_the_client_is_refused(table: Any, partition: str) -> None:
    _, cursor = page(table, f"PartitionKey eq {literal(partition)}", 3, None)
    assert cursor is not None
    with pytest.raises(ValidationFailed):
        page(table, f"PartitionKey eq {literal(partition)}", 3, cursor[:-4] + "!!!!")
