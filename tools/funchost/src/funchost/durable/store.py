"""Durable instances and their histories in Table Storage.

Table `<hub>Instances`: one row per instance (PartitionKey = instance id). Table
`<hub>History`: PartitionKey = instance id; RowKey `h-00000042` is history event 42,
valid only below the instance's `HistoryLength`; RowKey `i-<time>-<n>` is an inbox event
(a completion, timer or external event not yet shown to the orchestrator). Updating the
instance row is the commit point of an episode, so a crash between writes leaves either
the old or the new state, never a mix.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from ..storage import StorageAccount

CHUNK = 30_000  # characters per string property (a property holds at most 64 KiB)
MAX_CHUNKS = 30  # an entity holds at most 1 MiB
TERMINAL = frozenset({"Completed", "Failed", "Terminated"})


class PayloadTooLarge(Exception):
    pass


def _split(prefix: str, text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    parts = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    if len(parts) > MAX_CHUNKS:
        raise PayloadTooLarge(
            f"{prefix} is {len(text)} characters; funchost stores at most {CHUNK * MAX_CHUNKS}"
        )
    return {f"{prefix}{i}": part for i, part in enumerate(parts)}


def _join(prefix: str, entity: dict[str, Any]) -> str | None:
    if f"{prefix}0" not in entity:
        return None
    parts, i = [], 0
    while f"{prefix}{i}" in entity:
        parts.append(entity[f"{prefix}{i}"])
        i += 1
    return "".join(parts)


@dataclass
class Instance:
    instance_id: str
    name: str
    status: str = "Pending"
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    created: str = ""
    updated: str = ""
    execution_id: str = ""
    history_length: int = 0
    inbox_consumed: str = ""
    actions_seen: int = 0
    next_seq: int = 0
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.instance_id,
            "RowKey": "",
            "Name": self.name,
            "RuntimeStatus": self.status,
            "CreatedTime": self.created,
            "LastUpdatedTime": self.updated,
            "ExecutionId": self.execution_id,
            "HistoryLength": self.history_length,
            "InboxConsumed": self.inbox_consumed,
            "ActionsSeen": self.actions_seen,
            "NextSeq": self.next_seq,
            "ParentInstanceId": self.parent_instance_id or "",
            "ParentExecutionId": self.parent_execution_id or "",
            "ParentTaskId": -1 if self.parent_task_id is None else self.parent_task_id,
        }
        entity.update(_split("Input", self.input))
        entity.update(_split("Output", self.output))
        entity.update(_split("CustomStatus", self.custom_status))
        return entity

    @classmethod
    def from_entity(cls, e: dict[str, Any]) -> Instance:
        parent_task = int(e.get("ParentTaskId", -1))
        return cls(
            instance_id=e["PartitionKey"],
            name=e["Name"],
            status=e["RuntimeStatus"],
            input=_join("Input", e),
            output=_join("Output", e),
            custom_status=_join("CustomStatus", e),
            created=e["CreatedTime"],
            updated=e["LastUpdatedTime"],
            execution_id=e.get("ExecutionId", ""),
            history_length=int(e["HistoryLength"]),
            inbox_consumed=e.get("InboxConsumed", ""),
            actions_seen=int(e.get("ActionsSeen", 0)),
            next_seq=int(e.get("NextSeq", 0)),
            parent_instance_id=e.get("ParentInstanceId") or None,
            parent_execution_id=e.get("ParentExecutionId") or None,
            parent_task_id=None if parent_task < 0 else parent_task,
        )


def _key(value: str) -> str:
    return value.replace("'", "''")


class DurableStore:
    """Reads and writes instances, history and inboxes of one task hub."""

    def __init__(self, account: StorageAccount, hub: str) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,44}", hub):
            raise ValueError(
                f"task hub name {hub!r} must be 3-45 letters and digits, starting with a letter"
            )
        self.account = account
        self.hub = hub
        self._counter = 0

    async def open(self) -> None:
        self.service = self.account.table_service()
        self.instances = self.service.get_table_client(f"{self.hub}Instances")
        self.history = self.service.get_table_client(f"{self.hub}History")
        for table in (self.instances, self.history):
            try:
                await table.create_table()
            except ResourceExistsError:
                pass

    async def close(self) -> None:
        await self.instances.close()
        await self.history.close()
        await self.service.close()

    async def get(self, instance_id: str) -> Instance | None:
        try:
            entity = await self.instances.get_entity(instance_id, "")
        except ResourceNotFoundError:
            return None
        return Instance.from_entity(dict(entity))

    async def put(self, instance: Instance) -> None:
        await self.instances.upsert_entity(instance.to_entity(), mode="replace")

    async def query(
        self,
        statuses: set[str] | None = None,
        prefix: str | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
    ) -> list[Instance]:
        found = []
        async for entity in self.instances.list_entities():
            inst = Instance.from_entity(dict(entity))
            if statuses and inst.status not in statuses:
                continue
            if prefix and not inst.instance_id.startswith(prefix):
                continue
            if created_from and inst.created < created_from:
                continue
            if created_to and inst.created > created_to:
                continue
            found.append(inst)
        return found

    async def load_history(self, instance_id: str, length: int) -> list[dict[str, Any]]:
        rows: dict[int, dict[str, Any]] = {}
        query = f"PartitionKey eq '{_key(instance_id)}' and RowKey ge 'h-' and RowKey lt 'h.'"
        async for entity in self.history.query_entities(query):
            index = int(entity["RowKey"][2:])
            if index < length:
                rows[index] = json.loads(_join("Event", dict(entity)) or "{}")
        return [rows[i] for i in range(length)]

    async def append_history(
        self, instance_id: str, start: int, events: list[dict[str, Any]]
    ) -> None:
        operations = [
            (
                "upsert",
                {
                    "PartitionKey": instance_id,
                    "RowKey": f"h-{start + i:08d}",
                    **_split("Event", json.dumps(event)),
                },
                {"mode": "replace"},
            )
            for i, event in enumerate(events)
        ]
        for i in range(0, len(operations), 100):  # a transaction holds at most 100 operations
            await self.history.submit_transaction(operations[i : i + 100])

    async def add_inbox(self, instance_id: str, event: dict[str, Any]) -> str:
        self._counter += 1
        row_key = f"i-{time.time_ns():020d}-{self._counter:08d}"
        await self.history.upsert_entity(
            {"PartitionKey": instance_id, "RowKey": row_key, **_split("Event", json.dumps(event))}
        )
        return row_key

    async def load_inbox(self, instance_id: str, after: str) -> list[tuple[str, dict[str, Any]]]:
        query = (
            f"PartitionKey eq '{_key(instance_id)}' and RowKey gt '{_key(after or 'i-')}' "
            "and RowKey lt 'i.'"
        )
        rows = [
            (e["RowKey"], json.loads(_join("Event", dict(e)) or "{}"))
            async for e in self.history.query_entities(query)
        ]
        return sorted(rows, key=lambda r: r[0])

    async def delete_rows(self, instance_id: str, row_keys: list[str]) -> None:
        operations = [("delete", {"PartitionKey": instance_id, "RowKey": rk}) for rk in row_keys]
        for i in range(0, len(operations), 100):
            try:
                await self.history.submit_transaction(operations[i : i + 100])
            except Exception:  # some already gone: delete one by one
                for _, entity in operations[i : i + 100]:
                    try:
                        await self.history.delete_entity(entity["PartitionKey"], entity["RowKey"])
                    except ResourceNotFoundError:
                        pass

    async def purge(self, instance_id: str) -> bool:
        instance = await self.get(instance_id)
        query = f"PartitionKey eq '{_key(instance_id)}'"
        keys = [e["RowKey"] async for e in self.history.query_entities(query, select=["RowKey"])]
        await self.delete_rows(instance_id, keys)
        if instance is None:
            return False
        try:
            await self.instances.delete_entity(instance_id, "")
        except ResourceNotFoundError:
            return False
        return True
