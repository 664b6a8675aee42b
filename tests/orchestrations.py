"""Network jobs in tests without the durable host: the test plays the orchestration."""

from __future__ import annotations

from typing import Any


class NoOrchestrations:
    """Starts nothing: the test calls the activities (`run_slot`, `finish`) itself."""

    def start(self, name: str, instance_id: str, payload: dict[str, Any]) -> None:
        pass

    def terminate(self, instance_id: str, reason: str) -> None:
        pass
