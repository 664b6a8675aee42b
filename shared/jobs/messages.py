"""Queue messages on `jobs`: ids only (`{"user_id", "job_id"}`), never circuits.

A `poll` message (`{"user_id", "job_id", "poll": n}`) asks for the n-th poll of a cloud
supplier's task; it is sent with a visibility delay.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MalformedMessage(ValueError):
    """The message is not a job message; retrying cannot help."""


@dataclass(frozen=True)
class JobMessage:
    user_id: str
    job_id: str
    poll: int | None = None

    def encode(self) -> str:
        data: dict[str, object] = {"user_id": self.user_id, "job_id": self.job_id}
        if self.poll is not None:
            data["poll"] = self.poll
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> JobMessage:
        """Parse a message body; raises `MalformedMessage`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MalformedMessage("message is not JSON") from exc
        if not isinstance(data, dict):
            raise MalformedMessage("message is not a JSON object")
        user_id, job_id = data.get("user_id"), data.get("job_id")
        if not (isinstance(user_id, str) and _ID_RE.match(user_id)):
            raise MalformedMessage("message has no valid user_id")
        if not (isinstance(job_id, str) and _ID_RE.match(job_id)):
            raise MalformedMessage("message has no valid job_id")
        poll = data.get("poll")
        if poll is not None and not (type(poll) is int and poll >= 1):
            raise MalformedMessage("message has an invalid poll number")
        return cls(user_id=user_id, job_id=job_id, poll=poll)


@dataclass(frozen=True)
class Delivery:
    """Which delivery of which queue message this is (from the trigger's metadata)."""

    message_id: str
    dequeue_count: int
