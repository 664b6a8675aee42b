"""In-memory Table Storage and Blob containers for unit tests of the modules that keep their state
in rows (quotas, rate limits, idempotency keys).

`MemoryTable` answers the calls the app's conditional writes make (`shared.storage.etag`) as the
service does: a new ETag for every write, 409 for a duplicate insert, 412 for a stale `If-Match`,
404 for a missing row, and an entity-group transaction that applies all its operations or none.
`down()` makes every call fail as a storage outage does (a 503). It is a stand-in for the logic
above storage, not for Azure's: what only the service can show is tested against Azurite.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any, cast

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode

from shared.storage import Storage

_etags = itertools.count(1)
_CLAUSE = re.compile(r"(\w+) eq '((?:[^']|'')*)'")


class Entity(dict[str, Any]):
    """A row as the SDK reads it: its properties and `metadata["etag"]`."""

    def __init__(self, properties: Mapping[str, Any], etag: str) -> None:
        super().__init__(properties)
        self.metadata = {"etag": etag}


class MemoryTable:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Entity] = {}
        self.calls = 0  # every call, answered or failed
        self._outage = False

    def down(self, outage: bool = True) -> None:
        """From now on every call fails as in a storage outage (or, with False, answers again)."""
        self._outage = outage

    def row(self, partition_key: str, row_key: str) -> Entity | None:
        """The stored row, read without counting as a call."""
        return self.rows.get((partition_key, row_key))

    def create_entity(self, entity: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        self._call()
        return self._create(entity)

    def update_entity(
        self,
        entity: Mapping[str, Any],
        mode: UpdateMode = UpdateMode.MERGE,
        etag: str | None = None,
        match_condition: MatchConditions | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self._call()
        return self._update(entity, mode, etag, match_condition)

    def upsert_entity(
        self, entity: Mapping[str, Any], mode: UpdateMode = UpdateMode.MERGE, **_: Any
    ) -> dict[str, Any]:
        self._call()
        current = self.rows.get((entity["PartitionKey"], entity["RowKey"]))
        if current is None:
            return self._create(entity)
        return self._update(entity, mode)

    def _create(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.rows:
            raise ResourceExistsError("The specified entity already exists.")
        return self._put(key, entity)

    def _update(
        self,
        entity: Mapping[str, Any],
        mode: UpdateMode = UpdateMode.MERGE,
        etag: str | None = None,
        match_condition: MatchConditions | None = None,
    ) -> dict[str, Any]:
        key = (entity["PartitionKey"], entity["RowKey"])
        current = self.rows.get(key)
        if current is None:
            raise ResourceNotFoundError("The specified resource does not exist.")
        if match_condition is MatchConditions.IfNotModified and current.metadata["etag"] != etag:
            raise ResourceModifiedError("The update condition was not met.")
        properties = {**current, **entity} if mode is UpdateMode.MERGE else dict(entity)
        return self._put(key, properties)

    def get_entity(self, partition_key: str, row_key: str, **_: Any) -> Entity:
        self._call()
        found = self.rows.get((partition_key, row_key))
        if found is None:
            raise ResourceNotFoundError("The specified resource does not exist.")
        return Entity(found, found.metadata["etag"])

    def delete_entity(self, partition_key: str, row_key: str, **_: Any) -> None:
        self._call()
        if self.rows.pop((partition_key, row_key), None) is None:
            raise ResourceNotFoundError("The specified resource does not exist.")

    def query_entities(self, query_filter: str, **_: Any) -> Iterator[Entity]:
        """The rows matching a filter of `name eq 'text'` clauses joined by `and` (what the
        services' lookups by key and owner use), in key order; any other filter raises."""
        clauses = [_CLAUSE.fullmatch(c.strip()) for c in query_filter.split(" and ")]
        if not all(clauses):
            raise NotImplementedError(f"filter not understood here: {query_filter}")
        wanted = {m.group(1): m.group(2).replace("''", "'") for m in clauses if m}
        self._call()
        rows = [self.rows[key] for key in sorted(self.rows)]
        matching = [r for r in rows if all(str(r.get(k)) == v for k, v in wanted.items())]
        return iter([Entity(r, r.metadata["etag"]) for r in matching])

    def submit_transaction(self, operations: list[tuple[Any, ...]]) -> None:
        """`create` and `update` operations, all applied or none (the first refusal's status)."""
        self._call()
        saved = dict(self.rows)
        try:
            for operation in operations:
                kind, entity, options = operation[0], operation[1], dict(*operation[2:])
                if kind == "create":
                    self._create(entity)
                elif kind == "update":
                    self._update(entity, **options)
                else:
                    raise NotImplementedError(kind)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            self.rows = saved
            refused = TableTransactionError(message=str(exc))
            refused.status_code = {
                ResourceExistsError: 409,
                ResourceModifiedError: 412,
                ResourceNotFoundError: 404,
            }[type(exc)]
            raise refused from exc

    def _put(self, key: tuple[str, str], properties: Mapping[str, Any]) -> dict[str, Any]:
        etag = f'W/"{next(_etags)}"'
        self.rows[key] = Entity(properties, etag)
        return {"etag": etag}

    def _call(self) -> None:
        self.calls += 1
        if self._outage:
            outage = HttpResponseError("The server is busy.")
            outage.status_code = 503
            raise outage


class Download:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def readall(self) -> bytes:
        return self._data


class MemoryContainer:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def upload_blob(self, name: str, data: bytes, overwrite: bool = False, **_: Any) -> None:
        if name in self.blobs and not overwrite:
            raise ResourceExistsError("The specified blob already exists.")
        self.blobs[name] = bytes(data)

    def download_blob(self, name: str, **_: Any) -> Download:
        if name not in self.blobs:
            raise ResourceNotFoundError("The specified blob does not exist.")
        return Download(self.blobs[name])

    def delete_blob(self, name: str, **_: Any) -> None:
        if self.blobs.pop(name, None) is None:
            raise ResourceNotFoundError("The specified blob does not exist.")


class MemoryStorage:
    """What the services ask of `shared.storage.Storage`: a table and a container by name."""

    def __init__(self) -> None:
        self.tables: dict[str, MemoryTable] = {}
        self.containers: dict[str, MemoryContainer] = {}

    def table(self, name: str) -> MemoryTable:
        return self.tables.setdefault(name, MemoryTable())

    def container(self, name: str) -> MemoryContainer:
        return self.containers.setdefault(name, MemoryContainer())

    def as_storage(self) -> Storage:
        return cast(Storage, self)
