"""The durable task engine: the host side of the Durable Functions protocol.

For each episode the engine builds the orchestrator's context (history, input, instance
id), calls the orchestrator, reads back its actions and turns new ones into history
events and work: activities (run concurrently through the invoker), timers and
sub-orchestrations. Results arrive in the instance's inbox and start the next episode.

Task ids must match the SDK's sequence numbers. The SDK numbers tasks as it replays, and
a retried task's timer and re-run are numbered when the failure (or the timer) is
replayed, before any task the orchestrator yields afterwards. So an event that moves a
retry always opens its episode, and its ids are given before the episode's new actions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions import meta
from dateutil.parser import isoparse

from ..indexing import FunctionSpec
from ..invoker import Invoker, Outcome, decode, encode
from ..settings import HostConfig
from ..storage import resolve_account
from .history import (
    FAILURES,
    SCHEDULING,
    ActionType,
    EventType,
    event,
    for_sdk,
    task_id_of,
    utc_iso,
)
from .store import DurableStore, Instance

log = logging.getLogger("funchost")
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"


class InstanceNotFound(Exception):
    pass


class InstanceGone(Exception):
    """The instance has finished: it takes no more events."""


class InstanceConflict(Exception):
    pass


class UnknownOrchestrator(Exception):
    pass


@dataclass
class State:
    """The engine's in-memory view of one instance."""

    instance: Instance
    history: list[dict[str, Any]]
    inbox: list[tuple[str, dict[str, Any]]]
    scheduled: dict[int, dict[str, Any]] = field(default_factory=dict)
    resolved: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.index(self.history)

    def index(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            if e["EventType"] in SCHEDULING:
                self.scheduled[int(e["EventId"])] = e
            task_id = task_id_of(e)
            if task_id is not None:
                self.resolved.add(task_id)

    def reset(self) -> None:
        self.history, self.scheduled, self.resolved = [], {}, set()

    def waiting_on(self) -> set[int]:
        inbox_resolved = {task_id_of(e) for _, e in self.inbox}
        return set(self.scheduled) - self.resolved - inbox_resolved


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class DurableEngine:
    """Runs the orchestrations of one app and one task hub."""

    def __init__(
        self, config: HostConfig, functions: list[FunctionSpec], invoker: Invoker, base_url: str
    ) -> None:
        self.orchestrators = {
            f.name: f for f in functions if f.trigger_type == "orchestrationTrigger"
        }
        self.activities = {f.name: f for f in functions if f.trigger_type == "activityTrigger"}
        self.invoker = invoker
        self.store = DurableStore(resolve_account(config.durable_connection), config.hub_name)
        self.states: dict[str, State] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.dirty: set[str] = set()
        self.runners: dict[str, asyncio.Task[None]] = {}
        self.work: set[asyncio.Task[Any]] = set()
        self.timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self.stopping = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the hub's tables and resume every instance that had not finished."""
        await self.store.open()
        unfinished = await self.store.query({"Pending", "Running"})
        for instance in unfinished:
            await self._recover(instance.instance_id)
        if unfinished:
            log.info("Durable: resumed %d unfinished orchestration(s)", len(unfinished))

    async def close(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        tasks = [*self.work, *self.runners.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.work.add(task)
        task.add_done_callback(self.work.discard)
        return task

    # ---- the management API ----------------------------------------------------------

    async def start_new(
        self, name: str, instance_id: str | None, input_json: str | None
    ) -> Instance:
        if name not in self.orchestrators:
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist, is disabled, or is "
                "not an orchestrator function."
            )
        instance_id = instance_id or uuid.uuid4().hex
        async with self.locks[instance_id]:
            existing = await self._state(instance_id)
            if existing is not None and not existing.instance.is_terminal:
                raise InstanceConflict(
                    f"An Orchestration instance with the status "
                    f"{existing.instance.status} already exists."
                )
            return await self._create(instance_id, name, input_json, None)

    async def status(self, instance_id: str) -> tuple[Instance, list[dict[str, Any]]] | None:
        state = self.states.get(instance_id)
        if state is not None:
            return state.instance, state.history
        instance = await self.store.get(instance_id)
        if instance is None:
            return None
        return instance, await self.store.load_history(instance_id, instance.history_length)

    async def query(self, **filters: Any) -> list[Instance]:
        return await self.store.query(**filters)

    async def raise_event(self, instance_id: str, name: str, data_json: str | None) -> None:
        instance = await self._require_running(instance_id)
        await self._deliver(
            instance_id,
            instance.execution_id,
            event(EventType.EVENT_RAISED, Name=name, Input=data_json),
        )

    async def terminate(self, instance_id: str, reason: str) -> None:
        async with self.locks[instance_id]:
            state = await self._state(instance_id)
            if state is None:
                raise InstanceNotFound(instance_id)
            if state.instance.is_terminal:
                raise InstanceGone(instance_id)
            inst = state.instance
            terminated = event(EventType.EXECUTION_TERMINATED, Input=json.dumps(reason))
            await self.store.append_history(instance_id, inst.history_length, [terminated])
            inst.history_length += 1
            inst.status, inst.output, inst.updated = "Terminated", json.dumps(reason), utc_iso()
            await self.store.put(inst)
            state.history.append(terminated)
            self._finished(inst)
        log.info("Durable: %s terminated (%s)", instance_id, reason)

    async def purge(self, instance_id: str) -> bool:
        async with self.locks[instance_id]:
            self.states.pop(instance_id, None)
            self._cancel_timers(instance_id)
            return await self.store.purge(instance_id)

    async def _require_running(self, instance_id: str) -> Instance:
        state = await self._locked_state(instance_id)
        if state is None:
            raise InstanceNotFound(instance_id)
        if state.instance.is_terminal:
            raise InstanceGone(instance_id)
        return state.instance

    # ---- state -----------------------------------------------------------------------

    async def _locked_state(self, instance_id: str) -> State | None:
        async with self.locks[instance_id]:
            return await self._state(instance_id)

    async def _state(self, instance_id: str) -> State | None:
        """The cached state, loaded from storage on first use (call under the lock)."""
        state = self.states.get(instance_id)
        if state is not None:
            return state
        inst = await self.store.get(instance_id)
        if inst is None:
            return None
        history = await self.store.load_history(instance_id, inst.history_length)
        inbox = await self.store.load_inbox(instance_id, inst.inbox_consumed)
        state = State(inst, history, inbox)
        if not inst.is_terminal:
            self.states[instance_id] = state
        return state

    async def _create(
        self,
        instance_id: str,
        name: str,
        input_json: str | None,
        parent: tuple[str, str, int] | None,
    ) -> Instance:
        """Create (or overwrite a finished) instance; call under its lock."""
        self.states.pop(instance_id, None)
        self._cancel_timers(instance_id)
        await self.store.purge(instance_id)
        now = utc_iso()
        inst = Instance(
            instance_id=instance_id,
            name=name,
            input=input_json,
            created=now,
            updated=now,
            execution_id=uuid.uuid4().hex,
        )
        if parent is not None:
            inst.parent_instance_id, inst.parent_execution_id, inst.parent_task_id = parent
        started = event(EventType.EXECUTION_STARTED, Name=name, Input=input_json)
        row_key = await self.store.add_inbox(instance_id, started)
        await self.store.put(inst)
        self.states[instance_id] = State(inst, [], [(row_key, started)])
        self._schedule(instance_id)
        return inst

    async def _deliver(self, instance_id: str, execution_id: str, new: dict[str, Any]) -> None:
        """Put an event in an instance's inbox, unless that execution has moved on."""
        async with self.locks[instance_id]:
            state = await self._state(instance_id)
            if (
                state is None
                or state.instance.is_terminal
                or state.instance.execution_id != execution_id
            ):
                return
            task_id = task_id_of(new)
            if task_id is not None and task_id not in state.waiting_on():
                return  # a second delivery of the same result (an activity re-run)
            row_key = await self.store.add_inbox(instance_id, new)
            state.inbox.append((row_key, new))
        self._schedule(instance_id)

    # ---- episodes --------------------------------------------------------------------

    def _schedule(self, instance_id: str) -> None:
        self.dirty.add(instance_id)
        runner = self.runners.get(instance_id)
        if runner is None or runner.done():
            self.runners[instance_id] = self._spawn(self._run(instance_id))

    async def _run(self, instance_id: str) -> None:
        while instance_id in self.dirty and not self.stopping.is_set():
            self.dirty.discard(instance_id)
            try:
                await self._episode(instance_id)
            except Exception:  # storage trouble: keep the inbox and try again shortly
                log.exception("Durable: episode of %s failed; retrying", instance_id)
                await asyncio.sleep(1.0)
                self.dirty.add(instance_id)

    def _is_retry_move(self, state: State, e: dict[str, Any]) -> bool:
        task_id = task_id_of(e)
        scheduled = state.scheduled.get(task_id) if task_id is not None else None
        return bool(
            scheduled
            and "_retry" in scheduled
            and (e["EventType"] in FAILURES or e["EventType"] == EventType.TIMER_FIRED)
        )

    def _batch(self, state: State) -> list[tuple[str, dict[str, Any]]]:
        if not state.history:  # ExecutionStarted must be the first event of a new execution
            state.inbox.sort(key=lambda item: item[1]["EventType"] != EventType.EXECUTION_STARTED)
        batch = [state.inbox[0]]
        for item in state.inbox[1:]:
            if self._is_retry_move(state, item[1]):
                break
            batch.append(item)
        return batch

    async def _episode(self, instance_id: str) -> None:
        async with self.locks[instance_id]:
            state = await self._state(instance_id)
            if state is None or state.instance.is_terminal or not state.inbox:
                return
            inst = state.instance
            batch = self._batch(state)
            new_events = [e for _, e in batch]
            started = event(EventType.ORCHESTRATOR_STARTED)
            result = await self._call_orchestrator(state, [started, *new_events])
            appended = [started, *new_events]
            effects: list[tuple[Any, ...]] = []
            error = result.get("error")
            continue_input: tuple[str | None] | None = None
            if not error:
                self._move_retry(state, new_events[0], appended, effects)
                actions = [a for group in result.get("actions") or [] for a in group]
                for action in actions[inst.actions_seen :]:
                    kind = action.get("actionType")
                    if kind == ActionType.CONTINUE_AS_NEW:
                        continue_input = (action.get("input"),)
                        continue
                    unsupported = self._schedule_action(state, action, appended, effects)
                    if unsupported:
                        error = unsupported
                        break
                inst.actions_seen = len(actions)
            if result.get("customStatus") is not None:
                inst.custom_status = json.dumps(result["customStatus"])
            if error:
                inst.status = "Failed"
                inst.output = json.dumps(
                    f"Orchestrator function '{inst.name}' failed: {str(error).strip()}"
                )
                effects = []
            elif continue_input is not None:
                await self._continue_as_new(state, batch, continue_input[0])
                return
            elif result.get("isDone"):
                inst.status, inst.output = "Completed", json.dumps(result.get("output"))
            else:
                inst.status = "Running"
            if inst.is_terminal:
                appended.append(
                    event(
                        EventType.EXECUTION_COMPLETED,
                        OrchestrationStatus=inst.status,
                        Result=inst.output,
                    )
                )
            appended.append(event(EventType.ORCHESTRATOR_COMPLETED))
            await self.store.append_history(instance_id, inst.history_length, appended)
            inst.history_length += len(appended)
            inst.inbox_consumed, inst.updated = max(rk for rk, _ in batch), utc_iso()
            await self.store.put(inst)  # the commit point
            state.history.extend(appended)
            state.index(appended)
            del state.inbox[: len(batch)]
            await self.store.delete_rows(instance_id, [rk for rk, _ in batch])
            if inst.is_terminal:
                self._finished(inst)
                log.info("Durable: %s %s", instance_id, inst.status.lower())
                return
            for effect in effects:
                self._start(inst, effect)
            if state.inbox:
                self.dirty.add(instance_id)

    async def _call_orchestrator(
        self, state: State, new_events: list[dict[str, Any]]
    ) -> dict[str, Any]:
        inst = state.instance
        spec = self.orchestrators.get(inst.name)
        if spec is None:
            return {"error": f"The orchestrator function '{inst.name}' doesn't exist."}
        context = {
            "history": for_sdk(state.history, True) + for_sdk(new_events, False),
            "instanceId": inst.instance_id,
            "input": inst.input,
            "isReplaying": bool(state.history),
            "parentInstanceId": inst.parent_instance_id,
            "upperSchemaVersion": 0,
        }
        trigger = decode("orchestrationTrigger", meta.Datum(json.dumps(context), "string"))
        outcome = await self.invoker.invoke(
            spec, trigger, reason=f"orchestration {inst.instance_id}"
        )
        return _orchestrator_state(outcome)

    def _next_id(self, inst: Instance) -> int:
        task_id = inst.next_seq
        inst.next_seq += 1
        return task_id

    def _move_retry(
        self,
        state: State,
        first: dict[str, Any],
        appended: list[dict[str, Any]],
        effects: list[tuple[Any, ...]],
    ) -> None:
        """A retried task's failure schedules its timer; the timer schedules the next try."""
        if not self._is_retry_move(state, first):
            return
        scheduled = state.scheduled[task_id_of(first)]  # type: ignore[index]
        retry = scheduled["_retry"]
        if first["EventType"] in FAILURES:
            options = retry["options"]
            delay_ms = float(options.get("firstRetryIntervalInMilliseconds", 1000))
            delay_ms *= float(options.get("backoffCoefficient", 1)) ** (retry["attempt"] - 1)
            fire_at = datetime.now(UTC) + timedelta(milliseconds=delay_ms)
            timer_id = self._next_id(state.instance)
            appended.append(
                event(EventType.TIMER_CREATED, timer_id, FireAt=utc_iso(fire_at), _retry=retry)
            )
            effects.append(("timer", timer_id, fire_at))
        elif retry["attempt"] < int(retry["options"].get("maxNumberOfAttempts", 1)):
            again = {**retry, "attempt": retry["attempt"] + 1}
            self._schedule_task(state, again, appended, effects)

    def _schedule_task(
        self,
        state: State,
        spec: dict[str, Any],
        appended: list[dict[str, Any]],
        effects: list[tuple[Any, ...]],
    ) -> None:
        task_id = self._next_id(state.instance)
        retry = spec if spec.get("options") else None
        if spec["kind"] == "activity":
            appended.append(
                event(
                    EventType.TASK_SCHEDULED,
                    task_id,
                    Name=spec["name"],
                    Input=spec["input"],
                    _retry=retry,
                )
            )
            effects.append(("activity", task_id, spec["name"], spec["input"]))
        else:
            child = spec.get("instanceId") or f"{state.instance.instance_id}:{task_id:04d}"
            appended.append(
                event(
                    EventType.SUB_ORCHESTRATION_CREATED,
                    task_id,
                    Name=spec["name"],
                    InstanceId=child,
                    Input=spec["input"],
                    _retry=retry,
                )
            )
            effects.append(("suborchestration", task_id, spec["name"], child, spec["input"]))

    def _schedule_action(
        self,
        state: State,
        action: dict[str, Any],
        appended: list[dict[str, Any]],
        effects: list[tuple[Any, ...]],
    ) -> str | None:
        """Turn one new action into events and work; a message if funchost cannot run it."""
        kind = action.get("actionType")
        if kind in (
            ActionType.CALL_ACTIVITY,
            ActionType.CALL_ACTIVITY_WITH_RETRY,
            ActionType.CALL_SUB_ORCHESTRATOR,
            ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
        ):
            activity = kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY)
            spec: dict[str, Any] = {
                "kind": "activity" if activity else "suborchestration",
                "name": action["functionName"],
                "input": action.get("input"),
                "instanceId": action.get("instanceId"),
                "attempt": 1,
            }
            if action.get("retryOptions"):
                spec["options"] = action["retryOptions"]
            self._schedule_task(state, spec, appended, effects)
        elif kind == ActionType.CREATE_TIMER:
            timer_id = self._next_id(state.instance)
            fire_at = isoparse(action["fireAt"])
            canceled = bool(action.get("isCanceled"))
            appended.append(
                event(
                    EventType.TIMER_CREATED,
                    timer_id,
                    FireAt=utc_iso(fire_at),
                    _canceled=canceled or None,
                )
            )
            if not canceled:
                effects.append(("timer", timer_id, fire_at))
        elif kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            pass  # raised events go to the inbox whenever they come
        else:
            return f"funchost does not support durable action type {kind} (entities, call_http)"
        return None

    async def _continue_as_new(
        self, state: State, batch: list[tuple[str, dict[str, Any]]], input_json: str | None
    ) -> None:
        inst = state.instance
        inst.input, inst.status, inst.updated = input_json, "Running", utc_iso()
        inst.history_length = inst.actions_seen = inst.next_seq = 0
        inst.execution_id = uuid.uuid4().hex
        inst.inbox_consumed = max(rk for rk, _ in batch)
        started = event(EventType.EXECUTION_STARTED, Name=inst.name, Input=input_json)
        row_key = await self.store.add_inbox(inst.instance_id, started)
        await self.store.put(inst)
        self._cancel_timers(inst.instance_id)
        await self.store.delete_rows(inst.instance_id, [rk for rk, _ in batch])
        # Only raised events carry over; results of the old execution's tasks are stale.
        leftovers = state.inbox[len(batch) :]
        stale = [rk for rk, e in leftovers if e["EventType"] != EventType.EVENT_RAISED]
        await self.store.delete_rows(inst.instance_id, stale)
        state.reset()
        state.inbox = [item for item in leftovers if item[0] not in stale] + [(row_key, started)]
        self.dirty.add(inst.instance_id)

    # ---- work ------------------------------------------------------------------------

    def _start(self, inst: Instance, effect: tuple[Any, ...]) -> None:
        kind, task_id = effect[0], effect[1]
        if kind == "activity":
            self._spawn(
                self._run_activity(
                    inst.instance_id, inst.execution_id, task_id, effect[2], effect[3]
                )
            )
        elif kind == "timer":
            self._arm_timer(inst.instance_id, inst.execution_id, task_id, effect[2])
        else:
            self._spawn(
                self._start_child(
                    inst.instance_id, inst.execution_id, task_id, effect[2], effect[3], effect[4]
                )
            )

    async def _run_activity(
        self, instance_id: str, execution_id: str, task_id: int, name: str, input_json: str | None
    ) -> None:
        spec = self.activities.get(name)
        if spec is None:
            done = event(
                EventType.TASK_FAILED,
                TaskScheduledId=task_id,
                Reason=f"The activity function '{name}' doesn't exist.",
                Details="",
            )
        else:
            value = decode("activityTrigger", meta.Datum(input_json or "null", "string"))
            outcome = await self.invoker.invoke(spec, value, reason=f"activity of {instance_id}")
            result: str | None = None
            if outcome.ok:
                try:
                    result = encode("activityTrigger", outcome.value).value
                except ValueError as exc:
                    outcome.ok, outcome.error = False, exc
            if outcome.ok:
                done = event(EventType.TASK_COMPLETED, TaskScheduledId=task_id, Result=result)
            else:
                error = outcome.error
                done = event(
                    EventType.TASK_FAILED,
                    TaskScheduledId=task_id,
                    Reason=f"Activity function '{name}' failed: {error}",
                    Details="",
                )
        await self._deliver(instance_id, execution_id, done)

    def _arm_timer(
        self, instance_id: str, execution_id: str, timer_id: int, fire_at: datetime
    ) -> None:
        delay = (fire_at - datetime.now(UTC)).total_seconds()
        fired = event(EventType.TIMER_FIRED, TimerId=timer_id, FireAt=utc_iso(fire_at))

        def fire() -> None:
            self.timers.pop((instance_id, timer_id), None)
            self._spawn(self._deliver(instance_id, execution_id, fired))

        loop = asyncio.get_running_loop()
        self.timers[(instance_id, timer_id)] = loop.call_later(max(0.0, delay), fire)

    def _cancel_timers(self, instance_id: str) -> None:
        for key in [k for k in self.timers if k[0] == instance_id]:
            self.timers.pop(key).cancel()

    async def _start_child(
        self,
        parent_id: str,
        parent_execution: str,
        task_id: int,
        name: str,
        child_id: str,
        input_json: str | None,
    ) -> None:
        failure: str | None = None
        async with self.locks[child_id]:
            existing = await self._state(child_id)
            mine = (
                existing is not None
                and existing.instance.parent_instance_id == parent_id
                and existing.instance.parent_execution_id == parent_execution
                and existing.instance.parent_task_id == task_id
            )
            if mine and existing is not None and existing.instance.is_terminal:
                self._notify_parent(existing.instance)
            elif mine:
                pass  # created before a restart; it runs and reports on its own
            elif name not in self.orchestrators:
                failure = f"The orchestrator function '{name}' doesn't exist."
            elif existing is not None and not existing.instance.is_terminal:
                failure = f"An orchestration instance with id '{child_id}' is already running."
            else:
                await self._create(
                    child_id, name, input_json, (parent_id, parent_execution, task_id)
                )
        if failure:
            await self._deliver(
                parent_id,
                parent_execution,
                event(
                    EventType.SUB_ORCHESTRATION_FAILED,
                    TaskScheduledId=task_id,
                    Reason=failure,
                    Details="",
                ),
            )

    def _finished(self, inst: Instance) -> None:
        self._cancel_timers(inst.instance_id)
        self.states.pop(inst.instance_id, None)
        self._notify_parent(inst)

    def _notify_parent(self, inst: Instance) -> None:
        if not inst.parent_instance_id or inst.parent_task_id is None:
            return
        if inst.status == "Completed":
            done = event(
                EventType.SUB_ORCHESTRATION_COMPLETED,
                TaskScheduledId=inst.parent_task_id,
                Result=inst.output,
            )
        else:
            done = event(
                EventType.SUB_ORCHESTRATION_FAILED,
                TaskScheduledId=inst.parent_task_id,
                Reason=f"Sub-orchestration '{inst.name}' {inst.status.lower()}: "
                f"{_loads(inst.output)}",
                Details="",
            )
        self._spawn(self._deliver(inst.parent_instance_id, inst.parent_execution_id or "", done))

    async def _recover(self, instance_id: str) -> None:
        """After a restart: re-run unfinished activities, re-arm timers, check children."""
        async with self.locks[instance_id]:
            state = await self._state(instance_id)
            if state is None or state.instance.is_terminal:
                return
            inst = state.instance
            for task_id in sorted(state.waiting_on()):
                e = state.scheduled[task_id]
                if e["EventType"] == EventType.TASK_SCHEDULED:
                    self._start(inst, ("activity", task_id, e["Name"], e.get("Input")))
                elif e["EventType"] == EventType.TIMER_CREATED and not e.get("_canceled"):
                    self._start(inst, ("timer", task_id, isoparse(e["FireAt"])))
                elif e["EventType"] == EventType.SUB_ORCHESTRATION_CREATED:
                    self._start(
                        inst,
                        ("suborchestration", task_id, e["Name"], e["InstanceId"], e.get("Input")),
                    )
            if state.inbox:
                self.dirty.add(instance_id)
        if instance_id in self.dirty:
            self._schedule(instance_id)


def _orchestrator_state(outcome: Outcome) -> dict[str, Any]:
    """The orchestrator's reply; an orchestrator that raised carries it after a marker."""
    if outcome.ok:
        state: dict[str, Any] = json.loads(outcome.value)
        return state
    text = str(outcome.error)
    if OUT_OF_PROC_MARKER in text:
        message, data = text.split(OUT_OF_PROC_MARKER, 1)
        state = json.loads(data)
        state["error"] = state.get("error") or message
        return state
    return {"isDone": False, "actions": [], "error": text}
