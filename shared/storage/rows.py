"""Dataclass rows as table entities and back: one mapping for every table that stores one.

A row's two key fields become `PartitionKey` and `RowKey`; fields that are None are left out
(a merge then leaves the stored value alone); enums are stored by their value; the fields named
in `json_fields` (lists and nested dataclasses) are stored as compact JSON text. The row's
`etag` is never stored; reading fills it from the entity's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, fields
from enum import Enum
from typing import Any, TypeVar

Row = TypeVar("Row")


def to_entity(
    row: Any, *, partition: str, key: str, json_fields: Iterable[str] = ()
) -> dict[str, Any]:
    data = asdict(row)
    data.pop("etag", None)
    for name in json_fields:
        data[name] = json.dumps(data[name], separators=(",", ":"))
    entity = {k: v.value if isinstance(v, Enum) else v for k, v in data.items() if v is not None}
    entity["PartitionKey"] = entity.pop(partition)
    entity["RowKey"] = entity.pop(key)
    return entity


def from_entity(
    cls: type[Row],
    entity: Any,
    *,
    partition: str,
    key: str,
    convert: Mapping[str, Callable[[Any], Any]],
) -> Row:
    """The row `entity` holds; `convert` makes a stored value a field's type again (an enum
    from its value, a list from its JSON text...)."""
    names = {f.name for f in fields(cls)} - {partition, key, "etag"}  # type: ignore[arg-type]
    values = {k: entity[k] for k in names if k in entity}
    for name, make in convert.items():
        if name in values:
            values[name] = make(values[name])
    values[partition] = str(entity["PartitionKey"])
    values[key] = str(entity["RowKey"])
    values["etag"] = getattr(entity, "metadata", {}).get("etag")
    return cls(**values)
