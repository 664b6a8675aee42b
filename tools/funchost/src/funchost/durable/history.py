"""History events in the shape the durable SDK replays (DTFx's out-of-process schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any


class EventType(IntEnum):
    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_RAISED = 15


class ActionType(IntEnum):
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9


# Keys starting with "_" are the host's own bookkeeping; the SDK never sees them.
HOST_KEY = "_"


def utc_iso(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(kind: EventType, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "EventType": int(kind),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": utc_iso(),
    }
    data.update({k: v for k, v in fields.items() if v is not None})
    if kind == EventType.EXECUTION_STARTED:
        data["Version"] = fields.get("Version")  # the SDK reads it, even when None
    return data


def for_sdk(events: list[dict[str, Any]], played: bool) -> list[dict[str, Any]]:
    """Events as the SDK receives them: without host keys, with IsPlayed set."""
    return [
        {**{k: v for k, v in e.items() if not k.startswith(HOST_KEY)}, "IsPlayed": played}
        for e in events
    ]


def task_id_of(e: dict[str, Any]) -> int | None:
    """The id of the task a completion event resolves, None for other events."""
    kind = e["EventType"]
    if kind in (
        EventType.TASK_COMPLETED,
        EventType.TASK_FAILED,
        EventType.SUB_ORCHESTRATION_COMPLETED,
        EventType.SUB_ORCHESTRATION_FAILED,
    ):
        return int(e["TaskScheduledId"])
    if kind == EventType.TIMER_FIRED:
        return int(e["TimerId"])
    return None


SCHEDULING = (
    EventType.TASK_SCHEDULED,
    EventType.SUB_ORCHESTRATION_CREATED,
    EventType.TIMER_CREATED,
)
FAILURES = (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED)
