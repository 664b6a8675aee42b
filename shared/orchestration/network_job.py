"""The orchestration of a network job (instance id = job id): its runs, their fall-over, its end.

Input: `{"user_id", "job_id", "slots": [number of backends of each slot], "poll": [first, most]
seconds, "max_polls"}`, and on `continue_as_new` also `"state"`. Everything else (backends,
circuits, shots) stays in the job's row; activities take and return ids and small dicts.

1. Every slot's current attempt runs at once (`task_all` over `network_run`). An activity
   returns an outcome, never raises for a backend's failure: `{"slot", "attempt", "status":
   completed | failed | cancelled | running, ...}`, so one failed backend does not sink the rest.
2. A failed slot with another backend left (strategy `ordered`) runs its next attempt.
3. Runs still `running` (a cloud task the queue is polling) are read again after a durable
   timer that doubles from `poll[0]` to `poll[1]` seconds (`network_poll`); after every
   `_POLLS_PER_GENERATION` reads the instance continues as new, so its history stays small.
4. `network_finish` merges the outcomes into the job's result and ends the job.

Deterministic: no clock, random, I/O or environment here; time comes from the context only
(tests/unit/test_orchestration.py walks this module's syntax tree to keep it so).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

ORCHESTRATOR = "network_job"
RUN = "network_run"
POLL = "network_poll"
FINISH = "network_finish"
_POLLS_PER_GENERATION = 50


def orchestrate(context: Any) -> Generator[Any, Any, Any]:
    """The orchestrator function's body (`context`: a `DurableOrchestrationContext`)."""
    job: dict[str, Any] = context.get_input()
    user_id, job_id = job["user_id"], job["job_id"]
    widths: list[int] = job["slots"]
    state: dict[str, Any] = job.get("state") or {
        "attempts": [0] * len(widths),
        "outcomes": [None] * len(widths),
        "polls": 0,
    }
    attempts: list[int] = state["attempts"]
    outcomes: list[dict[str, Any] | None] = state["outcomes"]
    polls_here = 0
    while True:
        waiting = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if waiting:
            context.set_custom_status({"stage": "running", "runs": len(waiting)})
            finished = yield context.task_all(
                [
                    context.call_activity(
                        RUN,
                        {"user_id": user_id, "job_id": job_id, "slot": i, "attempt": attempts[i]},
                    )
                    for i in waiting
                ]
            )
            for outcome in finished:
                outcomes[outcome["slot"]] = outcome
        fall_over = [
            i
            for i, outcome in enumerate(outcomes)
            if outcome is not None and outcome["status"] == "failed" and attempts[i] + 1 < widths[i]
        ]
        for i in fall_over:
            attempts[i] += 1
            outcomes[i] = None
        if fall_over:
            continue
        running = [o for o in outcomes if o is not None and o["status"] == "running"]
        if not running or state["polls"] >= job["max_polls"]:
            break
        if polls_here >= _POLLS_PER_GENERATION:
            context.continue_as_new({**job, "state": state})
            return None
        first, most = job["poll"]
        delay = min(first * 2 ** min(state["polls"], 20), most)
        context.set_custom_status({"stage": "waiting", "runs": len(running), "next_s": delay})
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=delay))
        read = yield context.call_activity(
            POLL, {"user_id": user_id, "job_id": job_id, "runs": running}
        )
        for outcome in read:
            outcomes[outcome["slot"]] = outcome
        state["polls"] += 1
        polls_here += 1
    context.set_custom_status({"stage": "finishing"})
    summary = yield context.call_activity(
        FINISH, {"user_id": user_id, "job_id": job_id, "outcomes": outcomes}
    )
    return summary
