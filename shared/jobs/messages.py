"""Queue messages on `jobs`: ids only (`{"user_id", "job_id"}`), never circuits."""

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

    def encode(self) -> str:
        return json.dumps({"user_id": self.user_id, "job_id": self.job_id}, separators=(",", ":"))

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
        return cls(user_id=user_id, job_id=job_id)


@dataclass(frozen=True)
class Delivery:
    """Which delivery of which queue message this is (from the trigger's metadata)."""

    message_id: str
    dequeue_count: int
