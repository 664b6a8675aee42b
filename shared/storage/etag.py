"""Conditional writes: the only way state changes in Table Storage.

A duplicate insert answers 409 and a stale `If-Match` answers 412; both are outcomes the caller
decides about (a duplicate job id, a lost claim race), so they come back as `False`, not errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError


def insert_new(table: Any, entity: Mapping[str, Any]) -> str | None:
    """Insert `entity` and return its etag; None when a row with its keys already exists."""
    try:
        meta = table.create_entity(entity=dict(entity))
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
