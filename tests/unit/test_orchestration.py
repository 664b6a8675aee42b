"""The network job's orchestrator: deterministic, and its fan-out, fall-over and polling.

The orchestrator is driven here with a context that records what it asks for (the durable
engine itself runs it in tests/e2e/test_network_over_http.py)."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

from shared.orchestration import network_job
from shared.orchestration.network_job import FINISH, POLL, RUN, orchestrate

# Names an orchestrator must never touch: clock, randomness, environment, I/O, SDKs, services.
FORBIDDEN_MODULES = {
    "time", "random", "os", "uuid", "secrets", "socket", "requests", "aiohttp", "azure",
    "qiskit", "shared.services", "shared.storage", "shared.network", "shared.jobs", "threading",
}  # fmt: skip
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "print", "input", "sleep", "getenv"}


def test_the_orchestrator_module_uses_no_clock_random_environment_io_or_sdk() -> None:
    tree = ast.parse(inspect.getsource(network_job))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert not any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES), name
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert called not in FORBIDDEN_CALLS, f"line {node.lineno}: {called}()"
        if isinstance(node, ast.Attribute) and node.attr == "environ":
            raise AssertionError(f"line {node.lineno}: environ")


class Recorder:
    """A context that records the orchestrator's requests; tasks are (kind, payload)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.current_utc_datetime = datetime(2026, 11, 21, tzinfo=UTC)
        self.timers: list[float] = []
        self.continued: dict[str, Any] | None = None

    def get_input(self) -> dict[str, Any]:
        return self.payload

    def call_activity(self, name: str, data: Any) -> tuple[str, Any]:
        return (name, data)

    def task_all(self, tasks: list[Any]) -> tuple[str, Any]:
        return ("all", tasks)

    def create_timer(self, at: datetime) -> tuple[str, Any]:
        self.timers.append((at - self.current_utc_datetime).total_seconds())
        return ("timer", at)

    def set_custom_status(self, status: Any) -> None:
        pass

    def continue_as_new(self, payload: dict[str, Any]) -> None:
        self.continued = payload


Activity = Callable[[str, dict[str, Any]], Any]


def drive(context: Recorder, activity: Activity) -> tuple[Any, list[tuple[str, Any]]]:
    """Run the orchestrator to its end, answering each request with `activity`."""
    calls: list[tuple[str, Any]] = []
    generator: Generator[Any, Any, Any] = orchestrate(context)
    answer: Any = None
    try:
        while True:
            kind, data = generator.send(answer)
            if kind == "all":
                calls.extend(data)
                answer = [activity(name, d) for name, d in data]
            elif kind == "timer":
                context.current_utc_datetime = data
                answer = None
            else:
                calls.append((kind, data))
                answer = activity(kind, data)
    except StopIteration as stop:
        return stop.value, calls


def payload(*widths: int) -> dict[str, Any]:
    return {"user_id": "u", "job_id": "j", "slots": list(widths), "poll": [2, 60], "max_polls": 99}


def outcome(data: dict[str, Any], status: str) -> dict[str, Any]:
    return {"slot": data["slot"], "attempt": data["attempt"], "run_id": "r", "status": status}


def test_every_slot_runs_at_once_then_the_job_finishes_with_every_outcome() -> None:
    # given three slots that all complete
    context = Recorder(payload(1, 1, 1))
    # when
    result, calls = drive(
        context, lambda name, d: outcome(d, "completed") if name == RUN else {"status": "done"}
    )
    # then: three runs in one wave, no timer, one finish with the three outcomes
    assert [c[0] for c in calls] == [RUN, RUN, RUN, FINISH]
    assert [c[1]["slot"] for c in calls[:3]] == [0, 1, 2]
    assert [o["status"] for o in calls[3][1]["outcomes"]] == ["completed"] * 3
    assert context.timers == [] and result == {"status": "done"}


def test_a_failed_slot_with_backends_left_falls_over_to_the_next_attempt() -> None:
    # given an ordered slot of three backends whose first two attempts fail
    def activity(name: str, d: dict[str, Any]) -> Any:
        if name == RUN:
            return outcome(d, "failed" if d["attempt"] < 2 else "completed")
        return {"status": "done"}

    _, calls = drive(Recorder(payload(3)), activity)
    assert [(c[0], c[1].get("attempt")) for c in calls] == [
        (RUN, 0),
        (RUN, 1),
        (RUN, 2),
        (FINISH, None),
    ]


def test_a_failed_slot_with_no_backend_left_is_finished_as_failed_beside_the_others() -> None:
    _, calls = drive(
        Recorder(payload(1, 1)),
        lambda name, d: (
            outcome(d, "failed" if d.get("slot") == 0 else "completed") if name == RUN else {}
        ),
    )
    assert [o["status"] for o in calls[-1][1]["outcomes"]] == ["failed", "completed"]


def test_running_runs_are_read_again_after_timers_that_double() -> None:
    # given a cloud run that is still running for three reads
    reads = iter(["running", "running", "running", "completed"])

    def activity(name: str, d: dict[str, Any]) -> Any:
        if name == RUN:
            return outcome(d, "running")
        if name == POLL:
            return [{**run, "status": next(reads)} for run in d["runs"]]
        return {}

    context = Recorder(payload(1))
    _, calls = drive(context, activity)
    assert context.timers == [2, 4, 8, 16]
    assert [c[0] for c in calls] == [RUN, POLL, POLL, POLL, POLL, FINISH]
    assert calls[-1][1]["outcomes"][0]["status"] == "completed"


def test_a_long_wait_continues_as_new_with_its_state() -> None:
    # given a run that never finishes
    def activity(name: str, d: dict[str, Any]) -> Any:
        if name == RUN:
            return outcome(d, "running")
        if name == POLL:
            return [{**run, "status": "running"} for run in d["runs"]]
        return {}

    context = Recorder(payload(1))
    result, calls = drive(context, activity)
    assert result is None and context.continued is not None
    assert context.continued["state"]["polls"] == 50
    assert max(context.timers) == 60
    assert not any(c[0] == FINISH for c in calls)
    # and the next generation polls on without running the slot again
    again = Recorder(context.continued)
    _, later = drive(again, activity)
    assert later[0][0] == POLL


def test_past_max_polls_the_job_finishes_with_what_is_still_running() -> None:
    def activity(name: str, d: dict[str, Any]) -> Any:
        if name == RUN:
            return outcome(d, "running")
        if name == POLL:
            return [{**run, "status": "running"} for run in d["runs"]]
        return {}

    context = Recorder({**payload(1), "max_polls": 3})
    _, calls = drive(context, activity)
    assert [c[0] for c in calls] == [RUN, POLL, POLL, POLL, FINISH]
    assert context.timers == [2, 4, 8]
