"""The durable functions of network jobs: the orchestrator and its three activities.

The orchestrator's body is `shared.orchestration.network_job.orchestrate` (deterministic); each
activity is one call into the network service, with ids and small dicts in and out.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from shared.orchestration.network_job import orchestrate
from shared.services import services

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def network_job(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    summary = yield from orchestrate(context)
    return summary


@bp.activity_trigger(input_name="run")
def network_run(run: dict) -> dict:
    outcome = services().network.run_slot(
        str(run["user_id"]), str(run["job_id"]), int(run["slot"]), int(run["attempt"])
    )
    return outcome.to_dict()


@bp.activity_trigger(input_name="runs")
def network_poll(runs: dict) -> list:
    found = services().network.read_runs(str(runs["user_id"]), runs["runs"])
    return [outcome.to_dict() for outcome in found]


@bp.activity_trigger(input_name="outcomes")
def network_finish(outcomes: dict) -> dict:
    return services().network.finish(str(outcomes["user_id"]), str(outcomes["job_id"]))
