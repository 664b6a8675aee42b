"""Conditional writes: the only way state changes in Table Storage.

A duplicate insert answers 409 and a stale `If-Match` answers 412; both are outcomes the caller
decides about (a duplicate job id, a lost claim race), so they come back as `False`, not errors.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Final, Protocol, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError


def insert_new(table: Any, entity: Mapping[str, Any]) -> str | None:
    """Insert `entity` and return its etag; None when a row with its keys already exists.

    The service is asked not to echo the entity back (`Prefer: return-no-content`): the etag
    comes in a header either way, and reading the echo costs the client more than the insert's
    own serialising (about 0.2 ms of CPU and 0.4 ms of wall time per insert on Azurite here)."""
    try:
        meta = table.create_entity(entity=dict(entity), response_preference="return-no-content")
    except ResourceExistsError:
        return None
    return str(meta["etag"])


def merge_if_match(table: Any, entity: Mapping[str, Any], etag: str) -> str | None:
    """Merge `entity`'s properties into the row if it is unchanged since `etag` was read.

    Returns the row's new etag; None when another writer changed (412) or deleted (404) the
    row in between.
    """
    from azure.data.tables import UpdateMode

    try:
        meta = table.update_entity(
            entity=dict(entity),
            mode=UpdateMode.MERGE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        return None
    return str(meta["etag"])


class Row(Protocol):
    """A stored object that knows its keys and the etag it was read at."""

    etag: str | None

    @property
    def keys(self) -> tuple[str, str]: ...


def update_row(table: Any, row: Row, changes: Mapping[str, Any]) -> bool:
    """Merge `changes` (enum members stored as their values) into `row`'s row if it is still
    at `row.etag`. On success `row` holds the changes and its new etag; False when another
    writer changed the row first."""
    assert row.etag is not None, "an update needs a row read from storage"
    stored = {k: (v.value if isinstance(v, Enum) else v) for k, v in changes.items()}
    partition_key, row_key = row.keys
    entity = {"PartitionKey": partition_key, "RowKey": row_key, **stored}
    etag = merge_if_match(table, entity, row.etag)
    if etag is None:
        return False
    for name, value in changes.items():
        setattr(row, name, value)
    row.etag = etag
    return True


def transact(table: Any, operations: list[tuple[Any, ...]]) -> bool:
    """Submit `operations` as one entity-group transaction (one partition, at most 100): all
    are applied or none. False when one of them lost a race (a duplicate insert, a stale
    `If-Match`, a row gone); other failures raise."""
    from azure.data.tables import TableTransactionError

    try:
        table.submit_transaction(operations)
    except TableTransactionError as exc:
        if exc.status_code in (404, 409, 412):
            return False
        raise
    return True


def if_match(etag: str) -> dict[str, Any]:
    """The keyword arguments of a transaction's `update` that make it conditional on `etag`."""
    from azure.data.tables import UpdateMode

    return {
        "mode": UpdateMode.MERGE,
        "etag": etag,
        "match_condition": MatchConditions.IfNotModified,
    }


class Written(dict[str, Any]):
    """A row as this process wrote it: its properties and `metadata["etag"]`, like a row read
    back, so the next conditional write needs no read first."""

    def __init__(self, entity: Mapping[str, Any], etag: str) -> None:
        super().__init__(entity)
        self.metadata = {"etag": etag}


def write_if_unchanged(table: Any, entity: Mapping[str, Any], row: Any | None) -> Written | None:
    """Write `entity` over `row` as it was read (or as `Written`): insert it when `row` is
    None (there was none), else merge it if the row is unchanged since. The row as written
    (to write over next, without reading it); None when another writer came first."""
    if row is None:
        etag = insert_new(table, entity)
    else:
        etag = merge_if_match(table, entity, row.metadata["etag"])
    return Written(entity, etag) if etag is not None else None


T = TypeVar("T")
TRIES = 8  # tries of a read-decide-write before the row counts as too contended


class Lost:
    """What a try of `until_written` returns when its conditional write lost a race."""


LOST: Final = Lost()


def until_written(
    attempt: Callable[[int], T | Lost],
    *,
    busy: Callable[[], BaseException],
    tries: int = TRIES,
) -> T:
    """The one retry loop of conditional writes: `attempt(n)` (try n from 0) reads the row,
    decides and writes it conditionally, and returns its outcome, or `LOST` when another
    writer changed the row first; it is then tried again after a short random pause growing
    with n, so racing writers spread out and one of them wins each round. After `tries` lost
    races, raises `busy()`."""
    for n in range(tries):
        outcome = attempt(n)
        if not isinstance(outcome, Lost):
            return outcome
        time.sleep(random.uniform(0, min(0.002 * (n + 1), 0.05)))
    raise busy()


def merge(table: Any, entity: Mapping[str, Any]) -> None:
    """Merge `entity`'s properties into an existing row, whatever its state."""
    from azure.data.tables import UpdateMode

    table.update_entity(entity=dict(entity), mode=UpdateMode.MERGE)


def get_or_none(table: Any, partition_key: str, row_key: str) -> Any | None:
    """The row (a `TableEntity`, with `.metadata["etag"]`), or None when it does not exist."""
    try:
        return table.get_entity(partition_key=partition_key, row_key=row_key)
    except ResourceNotFoundError:
        return None
