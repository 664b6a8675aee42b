"""`shared.storage.rows`: a dataclass row as a table entity and back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.storage.rows import from_entity, to_entity


class Colour(StrEnum):
    RED = "red"


@dataclass
class Part:
    name: str


@dataclass
class Row:
    owner: str
    row_id: str
    colour: Colour
    parts: list[Part] = field(default_factory=list)
    note: str | None = None
    etag: str | None = None


class Entity(dict[str, Any]):
    """What the tables SDK reads: a dict with the row's metadata."""

    metadata = {"etag": 'W/"1"'}


def test_a_row_is_stored_under_its_keys_with_enums_by_value_and_lists_as_json() -> None:
    row = Row("u1", "r1", Colour.RED, [Part("a")], etag='W/"0"')

    entity = to_entity(row, partition="owner", key="row_id", json_fields=("parts",))

    assert entity == {
        "PartitionKey": "u1",
        "RowKey": "r1",
        "colour": "red",
        "parts": '[{"name":"a"}]',
    }  # no None field, no etag


def test_a_stored_row_reads_back_as_it_was_with_the_entitys_etag() -> None:
    row = Row("u1", "r1", Colour.RED, [Part("a"), Part("b")], note="n")
    entity = Entity(to_entity(row, partition="owner", key="row_id", json_fields=("parts",)))
    entity["unknown"] = "a property the row does not have"

    read = from_entity(
        Row,
        entity,
        partition="owner",
        key="row_id",
        convert={
            "colour": Colour,
            "parts": lambda text: [Part(**p) for p in json.loads(text)],
        },
    )

    assert read == Row("u1", "r1", Colour.RED, [Part("a"), Part("b")], note="n", etag='W/"1"')
