"""The stream's frames: what a client sends (one subscription) and what it receives.

A client sends `{"api_key": "...", "subscribe": ["job_updates", "backend_status"]}` and
gets back, as JSON text frames:

- `{"type": "subscribed", "subscribe": [...]}` once;
- `{"type": "job_update", "job_id", "status", "timestamp", "job_type"}` for each status change
  of its own jobs (`job_type` "job" for v1 jobs and a network job's runs, "network_job" for v2),
  with `backend` (its network id) when the job names one, `network_job_id` on a network job's
  run, and on a network job's updates `runs_planned` and (when known) `runs_finished`; as each
  run of a network job ends, an update with status `running` and `run` `{run_id, backend,
  status}` (the run that ended). A terminal status is final: a client ignores a later
  non-terminal update of the same job;
- `{"type": "backend_status", "id", "status", "queue_depth", "timestamp"}` on a backend's change;
- `{"type": "error", "error_code", "detail"}` before the connection is closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.events import Event

JOB_UPDATES = "job_updates"
BACKEND_STATUS = "backend_status"
TOPICS = (JOB_UPDATES, BACKEND_STATUS)

# The Web PubSub groups a connection joins: its user's jobs, and every backend change.
BACKEND_GROUP = "backend_status"
MAX_FRAME_CHARS = 4096  # a subscription is small; anything bigger is refused unread


def user_group(user_id: str) -> str:
    return f"user.{user_id}"


class FrameError(Exception):
    """The client's frame cannot be used; `error_code` and the message go back to it."""

    def __init__(self, error_code: str, detail: str) -> None:
        super().__init__(detail)
        self.error_code = error_code
        self.detail = detail


@dataclass(frozen=True)
class Subscription:
    api_key: str
    topics: tuple[str, ...]


def parse_subscription(text: str) -> Subscription:
    """The subscription in a client's frame. Raises `FrameError` (`INVALID_FRAME` for a frame
    that is not `{"api_key": str, "subscribe": [topic, ...]}`, `UNKNOWN_TOPIC`)."""
    if len(text) > MAX_FRAME_CHARS:
        raise FrameError("INVALID_FRAME", f"a frame is at most {MAX_FRAME_CHARS} characters")
    try:
        frame = json.loads(text)
    except ValueError:
        raise FrameError("INVALID_FRAME", "the frame is not JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("INVALID_FRAME", "the frame is not a JSON object")
    unknown = sorted(set(frame) - {"api_key", "subscribe"})
    if unknown:
        raise FrameError("INVALID_FRAME", f"unknown fields: {', '.join(unknown)[:200]}")
    api_key, topics = frame.get("api_key"), frame.get("subscribe")
    if not isinstance(api_key, str) or not api_key:
        raise FrameError("INVALID_FRAME", "api_key must be a non-empty string")
    if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
        raise FrameError("INVALID_FRAME", "subscribe must be a non-empty list of topic names")
    for topic in topics:
        if topic not in TOPICS:
            raise FrameError(
                "UNKNOWN_TOPIC",
                f"unknown topic {topic[:64]!r}; the topics are {', '.join(TOPICS)}",
            )
    return Subscription(api_key, tuple(dict.fromkeys(topics)))


def groups_for(user_id: str, topics: tuple[str, ...]) -> list[str]:
    """The groups a connection of `user_id` subscribed to `topics` joins."""
    groups = []
    if JOB_UPDATES in topics:
        groups.append(user_group(user_id))
    if BACKEND_STATUS in topics:
        groups.append(BACKEND_GROUP)
    return groups


def subscribed(topics: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "subscribed", "subscribe": list(topics)}


def error(error_code: str, detail: str) -> dict[str, Any]:
    return {"type": "error", "error_code": error_code, "detail": detail}


@dataclass(frozen=True)
class Outgoing:
    """One message for one Web PubSub group."""

    group: str
    message: dict[str, Any]


def for_event(event: Event) -> Outgoing | None:
    """The message `event` becomes, and the group it goes to (None: nobody gets it)."""
    if event.kind in ("job", "network_job"):
        if not event.user_id:
            return None
        return Outgoing(user_group(event.user_id), job_update(event))
    if event.kind == "backend":
        return Outgoing(
            BACKEND_GROUP,
            {
                "type": "backend_status",
                "id": event.id,
                "status": event.status,
                "queue_depth": event.queue_depth,
                "timestamp": event.at,
            },
        )
    return None


def job_update(event: Event) -> dict[str, Any]:
    """A job's or a network job's update: the fields set on `event`, no nulls."""
    message: dict[str, Any] = {
        "type": "job_update",
        "job_id": event.id,
        "status": event.status,
        "timestamp": event.at,
        "job_type": event.kind,
    }
    if event.backend:
        message["backend"] = event.backend
    if event.network_job_id:
        message["network_job_id"] = event.network_job_id
    progress = event.progress
    if progress is not None:
        message["runs_planned"] = progress.runs_planned
        if progress.runs_finished is not None:
            message["runs_finished"] = progress.runs_finished
        if progress.run is not None:
            message["run"] = {
                "run_id": progress.run.run_id,
                "backend": progress.run.backend,
                "status": progress.run.status,
            }
    return message
