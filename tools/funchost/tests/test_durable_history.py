"""Pieces of funchost's durable engine, tested without running a host.

Orchestrators here run in the real durable SDK on histories the engine's helpers build,
so the host/SDK contract (history schema, the `$OutOfProcData$` error marker, task ids)
is checked without Azurite. The store's round trips that need Table Storage use the
session's Azurite.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df
import pytest

from funchost.durable.engine import (
    OUT_OF_PROC_MARKER,
    DurableEngine,
    State,
    _orchestrator_state,
)
from funchost.durable.history import ActionType, EventType, event, for_sdk, task_id_of, utc_iso
from funchost.durable.store import (
    CHUNK,
    MAX_CHUNKS,
    DurableStore,
    Instance,
    PayloadTooLarge,
    _join,
    _split,
)
from funchost.invoker import Outcome
from funchost.storage import StorageAccount
from funchost.testing import Azurite

Orchestrator = Callable[[df.DurableOrchestrationContext], Generator[Any, Any, Any]]


def run_in_sdk(
    fn: Orchestrator,
    played: list[dict[str, Any]],
    new: list[dict[str, Any]],
    input_json: str | None = None,
) -> Outcome:
    """Call an orchestrator through the SDK as the engine does; its Outcome."""
    context = {
        "history": for_sdk(played, True) + for_sdk(new, False),
        "instanceId": "unit",
        "input": input_json,
        "isReplaying": bool(played),
        "parentInstanceId": None,
        "upperSchemaVersion": 0,
    }
    handle = df.Orchestrator.create(fn)
    try:
        return Outcome(invocation_id="x", ok=True, value=handle(json.dumps(context)))
    except Exception as exc:  # the SDK raises when the orchestrator did
        return Outcome(invocation_id="x", ok=False, error=exc)


def started(input_json: str | None = None) -> list[dict[str, Any]]:
    return [
        event(EventType.ORCHESTRATOR_STARTED),
        event(EventType.EXECUTION_STARTED, Name="unit", Input=input_json),
    ]


def bare_engine() -> DurableEngine:
    """An engine without storage, for its pure bookkeeping methods."""
    return object.__new__(DurableEngine)


# ---- the orchestrator's reply ----------------------------------------------------------


def test_reply_of_an_orchestrator_that_yields_lists_its_new_actions() -> None:
    # given
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        context.set_custom_status("working")
        value = yield context.call_activity("double", 21)
        return value

    # when
    state = _orchestrator_state(run_in_sdk(orchestrator, [], started()))

    # then
    assert state["isDone"] is False
    assert state.get("error") is None
    assert state["customStatus"] == "working"
    [[action]] = state["actions"]
    assert action["actionType"] == ActionType.CALL_ACTIVITY
    assert (action["functionName"], json.loads(action["input"])) == ("double", 21)


def test_reply_after_the_activity_completed_carries_the_output() -> None:
    # given a history in which the activity was scheduled and has completed
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        value = yield context.call_activity("double", 21)
        return {"doubled": value}

    played = [
        *started(),
        event(EventType.TASK_SCHEDULED, 0, Name="double", Input="21", _retry=None),
        event(EventType.ORCHESTRATOR_COMPLETED),
    ]
    new = [
        event(EventType.ORCHESTRATOR_STARTED),
        event(EventType.TASK_COMPLETED, TaskScheduledId=0, Result="42"),
    ]

    # when
    state = _orchestrator_state(run_in_sdk(orchestrator, played, new))

    # then
    assert state["isDone"] is True
    assert state["output"] == {"doubled": 42}


def test_orchestrator_that_raised_keeps_its_custom_status_and_error_message() -> None:
    # given an orchestrator that sets a custom status, then raises
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        context.set_custom_status({"stage": "validating"})
        if context.get_input() < 0:
            raise ValueError("the amount must not be negative")
        yield context.call_activity("double", 1)

    # when
    outcome = run_in_sdk(orchestrator, [], started("-5"), input_json="-5")
    state = _orchestrator_state(outcome)

    # then
    assert not outcome.ok
    assert OUT_OF_PROC_MARKER in str(outcome.error)
    assert "the amount must not be negative" in state["error"]
    assert OUT_OF_PROC_MARKER not in state["error"]
    assert state["customStatus"] == {"stage": "validating"}
    assert state["isDone"] is False


def test_error_after_the_marker_without_its_own_error_takes_the_message_before_it() -> None:
    # given
    text = f"boom{OUT_OF_PROC_MARKER}" + json.dumps({"isDone": False, "actions": [[]]})

    # when
    state = _orchestrator_state(Outcome("x", ok=False, error=Exception(text)))

    # then
    assert state == {"isDone": False, "actions": [[]], "error": "boom"}


def test_error_without_the_marker_is_an_error_with_no_actions() -> None:
    # given a failure before the SDK ran (a broken function, say)
    outcome = Outcome("x", ok=False, error=TypeError("handle() missing 1 argument"))

    # when
    state = _orchestrator_state(outcome)

    # then
    assert state == {"isDone": False, "actions": [], "error": "handle() missing 1 argument"}


def test_new_uuid_and_current_time_come_out_the_same_on_a_replay() -> None:
    # given an orchestrator that returns a uuid and time computed before a yield
    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        first = context.new_uuid()
        moment = context.current_utc_datetime.isoformat()
        yield context.call_activity("noop", None)
        return [first, moment, context.new_uuid()]

    played = [
        *started(),
        event(EventType.TASK_SCHEDULED, 0, Name="noop"),
        event(EventType.ORCHESTRATOR_COMPLETED),
    ]
    new = [
        event(EventType.ORCHESTRATOR_STARTED),
        event(EventType.TASK_COMPLETED, TaskScheduledId=0, Result="null"),
    ]

    # when
    once = _orchestrator_state(run_in_sdk(orchestrator, played, new))["output"]
    again = _orchestrator_state(run_in_sdk(orchestrator, played, new))["output"]

    # then
    assert once == again
    assert once[0] != once[2]
    first_episode = datetime.fromisoformat(played[0]["Timestamp"].replace("Z", "+00:00"))
    assert once[1] == first_episode.isoformat()


# ---- history events --------------------------------------------------------------------


def test_history_for_the_sdk_has_no_host_keys_and_the_played_flag_set() -> None:
    # given
    scheduled = event(EventType.TASK_SCHEDULED, 3, Name="a", _retry={"attempt": 1})
    timer = event(EventType.TIMER_CREATED, 4, FireAt=utc_iso(), _canceled=True)

    # when
    played = for_sdk([scheduled, timer], True)
    new = for_sdk([scheduled], False)

    # then
    assert all(not key.startswith("_") for e in played + new for key in e)
    assert [e["IsPlayed"] for e in played + new] == [True, True, False]
    assert played[0]["EventId"] == 3 and played[0]["Name"] == "a"
    assert scheduled["_retry"] == {"attempt": 1}  # the stored event is left as it was


def test_events_leave_out_missing_fields_but_execution_started_always_has_a_version() -> None:
    # when
    execution = event(EventType.EXECUTION_STARTED, Name="o", Input=None)
    completed = event(EventType.TASK_COMPLETED, TaskScheduledId=2, Result=None)

    # then
    assert "Version" in execution and execution["Version"] is None
    assert "Input" not in execution
    assert "Result" not in completed
    assert (execution["EventId"], execution["IsPlayed"]) == (-1, False)


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (event(EventType.TASK_COMPLETED, TaskScheduledId=5, Result="1"), 5),
        (event(EventType.TASK_FAILED, TaskScheduledId=6, Reason="r"), 6),
        (event(EventType.SUB_ORCHESTRATION_COMPLETED, TaskScheduledId=7), 7),
        (event(EventType.SUB_ORCHESTRATION_FAILED, TaskScheduledId=8), 8),
        (event(EventType.TIMER_FIRED, TimerId=9, FireAt=utc_iso()), 9),
        (event(EventType.EVENT_RAISED, Name="approve", Input="1"), None),
        (event(EventType.TASK_SCHEDULED, 4, Name="a"), None),
    ],
)
def test_completion_events_name_the_task_they_resolve(
    new: dict[str, Any], expected: int | None
) -> None:
    # when / then
    assert task_id_of(new) == expected


def test_timestamps_are_utc_with_microseconds_and_a_z() -> None:
    # given a moment in another time zone
    moment = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))

    # when
    text = utc_iso(moment)

    # then
    assert text == "2024-03-01T10:30:15.123456Z"
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


# ---- the engine's bookkeeping ------------------------------------------------------------


def test_state_waits_on_tasks_scheduled_but_neither_resolved_nor_in_the_inbox() -> None:
    # given tasks 0..3 scheduled; 0 resolved in history, 1 resolved in the inbox
    history = [
        *started(),
        event(EventType.TASK_SCHEDULED, 0, Name="a"),
        event(EventType.TASK_SCHEDULED, 1, Name="a"),
        event(EventType.TIMER_CREATED, 2, FireAt=utc_iso()),
        event(EventType.SUB_ORCHESTRATION_CREATED, 3, Name="child", InstanceId="c"),
        event(EventType.TASK_COMPLETED, TaskScheduledId=0, Result="1"),
    ]
    inbox = [("i-1", event(EventType.TASK_COMPLETED, TaskScheduledId=1, Result="2"))]

    # when
    state = State(Instance("unit", "o"), history, inbox)

    # then
    assert state.waiting_on() == {2, 3}


def test_a_new_execution_sees_execution_started_first_even_if_events_came_before() -> None:
    # given an event raised before the execution's start reached the inbox
    raised = ("i-1", event(EventType.EVENT_RAISED, Name="approve"))
    execution = ("i-2", event(EventType.EXECUTION_STARTED, Name="o"))
    state = State(Instance("unit", "o"), [], [raised, execution])

    # when
    batch = bare_engine()._batch(state)

    # then
    kinds = [e["EventType"] for _, e in batch]
    assert kinds == [EventType.EXECUTION_STARTED, EventType.EVENT_RAISED]


def test_a_retried_tasks_failure_opens_an_episode_of_its_own() -> None:
    # given task 0 retried; a plain completion, then task 0's failure, then another event
    retry = {"kind": "activity", "name": "a", "input": None, "attempt": 1, "options": {}}
    history = [
        *started(),
        event(EventType.TASK_SCHEDULED, 0, Name="a", _retry=retry),
        event(EventType.TASK_SCHEDULED, 1, Name="b"),
    ]
    inbox = [
        ("i-1", event(EventType.TASK_COMPLETED, TaskScheduledId=1, Result="1")),
        ("i-2", event(EventType.TASK_FAILED, TaskScheduledId=0, Reason="r")),
        ("i-3", event(EventType.EVENT_RAISED, Name="e")),
    ]
    state = State(Instance("unit", "o"), history, inbox)
    engine = bare_engine()

    # when
    first = engine._batch(state)
    del state.inbox[: len(first)]
    second = engine._batch(state)

    # then
    assert [rk for rk, _ in first] == ["i-1"]
    assert [rk for rk, _ in second] == ["i-2", "i-3"]


def retry_state(attempt: int, max_attempts: int) -> tuple[State, dict[str, Any]]:
    options = {
        "firstRetryIntervalInMilliseconds": 1000,
        "backoffCoefficient": 2,
        "maxNumberOfAttempts": max_attempts,
    }
    retry = {"kind": "activity", "name": "a", "input": '"x"', "attempt": attempt}
    retry["options"] = options
    inst = Instance("unit", "o", next_seq=5)
    history = [*started(), event(EventType.TASK_SCHEDULED, 4, Name="a", Input='"x"', _retry=retry)]
    return State(inst, history, []), retry


def test_a_retried_tasks_failure_arms_a_backed_off_timer() -> None:
    # given the second attempt (of three) failed, with a 1 s first interval doubling
    state, retry = retry_state(attempt=2, max_attempts=3)
    failed = event(EventType.TASK_FAILED, TaskScheduledId=4, Reason="r")
    appended: list[dict[str, Any]] = []
    effects: list[tuple[Any, ...]] = []
    before = datetime.now(UTC)

    # when
    bare_engine()._move_retry(state, failed, appended, effects)

    # then
    [timer] = appended
    assert (timer["EventType"], timer["EventId"], timer["_retry"]) == (
        EventType.TIMER_CREATED,
        5,
        retry,
    )
    [(kind, timer_id, fire_at)] = effects
    assert (kind, timer_id) == ("timer", 5)
    assert timedelta(seconds=1.9) < fire_at - before < timedelta(seconds=3)
    assert state.instance.next_seq == 6


def test_a_retry_timer_schedules_the_next_attempt_until_attempts_run_out() -> None:
    # given retry timers (id 4) of a task on its second and on its last attempt
    engine = bare_engine()
    outcomes = []
    for attempt in (2, 3):
        state, retry = retry_state(attempt=attempt, max_attempts=3)
        state.index([event(EventType.TIMER_CREATED, 5, FireAt=utc_iso(), _retry=retry)])
        fired = event(EventType.TIMER_FIRED, TimerId=5, FireAt=utc_iso())
        appended: list[dict[str, Any]] = []
        effects: list[tuple[Any, ...]] = []

        # when
        engine._move_retry(state, fired, appended, effects)
        outcomes.append((appended, effects))

    # then
    [(again, again_effects), (nothing, no_effects)] = outcomes
    [scheduled] = again
    assert (scheduled["EventType"], scheduled["EventId"]) == (EventType.TASK_SCHEDULED, 5)
    assert scheduled["_retry"]["attempt"] == 3
    assert again_effects == [("activity", 5, "a", '"x"')]
    assert (nothing, no_effects) == ([], [])


# ---- the store ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "short", "x" * CHUNK, "y" * (CHUNK + 1), "é€😀" * (CHUNK // 2)],
    ids=["empty", "short", "one-full-chunk", "just-over-a-chunk", "non-ascii"],
)
def test_long_values_split_into_properties_and_join_back(text: str) -> None:
    # when
    parts = _split("Output", text)

    # then
    assert _join("Output", parts) == text
    assert list(parts) == [f"Output{i}" for i in range(len(parts))]
    assert all(len(part) <= CHUNK for part in parts.values())


def test_a_missing_value_is_no_property_and_joins_to_none() -> None:
    # when / then
    assert _split("Input", None) == {}
    assert _join("Input", {"Output0": "1"}) is None


def test_values_beyond_the_entity_limit_are_refused() -> None:
    # given
    most = "z" * (CHUNK * MAX_CHUNKS)

    # when / then
    assert len(_split("Output", most)) == MAX_CHUNKS
    with pytest.raises(PayloadTooLarge, match="Output is"):
        _split("Output", most + "z")


def test_an_instance_survives_a_round_trip_through_its_entity() -> None:
    # given a sub-orchestration with a large output
    inst = Instance(
        instance_id="child",
        name="o",
        status="Completed",
        input='{"n": 1}',
        output=json.dumps("o" * (CHUNK * 2 + 7)),
        custom_status='"done"',
        created=utc_iso(),
        updated=utc_iso(),
        execution_id="e1",
        history_length=12,
        inbox_consumed="i-00000000000000000001-00000001",
        actions_seen=3,
        next_seq=4,
        parent_instance_id="parent",
        parent_execution_id="pe",
        parent_task_id=0,
    )

    # when
    entity = inst.to_entity()
    back = Instance.from_entity(entity)

    # then
    assert back == inst
    assert back.is_terminal
    assert Instance.from_entity(Instance("top", "o").to_entity()).parent_task_id is None


@pytest.mark.parametrize("hub", ["ab", "1hub", "my-hub", "hub_name", "h" * 46])
def test_task_hub_names_must_be_letters_and_digits(hub: str) -> None:
    # when / then
    with pytest.raises(ValueError, match="task hub name"):
        DurableStore(StorageAccount("AzureWebJobsStorage", "unused"), hub)


def test_history_and_inbox_round_trip_through_table_storage(azurite: Azurite) -> None:
    # given 150 history events (two transactions), one of them larger than a property
    account = StorageAccount("AzureWebJobsStorage", azurite.connection_string)
    store = DurableStore(account, f"Unit{uuid.uuid4().hex[:8]}")
    big = "b" * (CHUNK * 3)
    events = [event(EventType.EVENT_RAISED, Name=f"e{i}", Input="1") for i in range(150)]
    events[7]["Input"] = json.dumps(big)

    async def scenario() -> tuple[list[Any], list[Any], list[Any], bool]:
        await store.open()
        try:
            await store.append_history("one", 0, events)
            keys = [
                await store.add_inbox("one", event(EventType.EVENT_RAISED, Name=name))
                for name in "abc"
            ]
            # when
            history = await store.load_history("one", 149)  # the last event is not committed
            unseen = await store.load_inbox("one", keys[0])
            await store.put(Instance("one", "o", history_length=149))
            purged = await store.purge("one")
            left = await store.load_inbox("one", "")
            return history, unseen, left, purged
        finally:
            await store.close()

    history, unseen, left, purged = asyncio.run(scenario())

    # then
    assert [e["Name"] for e in history] == [f"e{i}" for i in range(149)]
    assert json.loads(history[7]["Input"]) == big
    assert [e["Name"] for _, e in unseen] == ["b", "c"]
    assert purged and left == []
