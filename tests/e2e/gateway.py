"""What the end-to-end tests ask of a running gateway over HTTP: a new user's key, a queued job.

Each call asserts the status it expects and shows the answer's text when it is another.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests


def new_key(base_url: str, admin_key: str, *, tier: str = "professional", tenant: str = "") -> str:
    """The API key of a new user (`POST /admin/users` with the admin key), so that tests never
    share jobs."""
    answer = requests.post(
        f"{base_url}/admin/users",
        json={"email": f"e2e-{uuid.uuid4().hex[:10]}@example.com", "tier": tier, "tenant": tenant},
        headers=key_headers(admin_key),
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["api_key"])


def key_headers(key: str) -> dict[str, str]:
    """The headers that present `key`."""
    return {"X-API-Key": key}


def submit(base_url: str, key: str, qasm: str, *, shots: int | None = None) -> str:
    """Queue `qasm` with `POST /api/v1/execute` (the server's default shots unless given);
    answers the job id."""
    body: dict[str, Any] = {"qasm": qasm}
    if shots is not None:
        body["shots"] = shots
    answer = requests.post(
        f"{base_url}/api/v1/execute", json=body, headers=key_headers(key), timeout=30
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])
