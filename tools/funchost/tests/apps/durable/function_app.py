"""Durable Functions sample app for funchost's tests.

HTTP functions drive the durable client (start, status, terminate, purge, raise
events, list); orchestrators cover fan-out/fan-in, activity failures, retries, a timer
racing an external event, sub-orchestrations, continue_as_new, replay determinism and
slow work that survives a host crash. Activities count their attempts per key in
ATTEMPTS (the host runs them in its own process), readable at GET api/attempts/{key}.
"""

import json
import threading
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models import DurableOrchestrationStatus

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

ATTEMPTS: dict[str, int] = {}
_ATTEMPTS_LOCK = threading.Lock()


def _count_attempt(key: str) -> int:
    with _ATTEMPTS_LOCK:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        return ATTEMPTS[key]


def _json(value: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


def _status_json(status: DurableOrchestrationStatus) -> dict[str, object]:
    return {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
        "input": status.input_,
        "output": status.output,
        "customStatus": status.custom_status,
    }


# ---- the durable client over HTTP ---------------------------------------------------


@app.route(route="start/{name}/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    name, instance_id = req.route_params["name"], req.route_params["instance_id"]
    try:
        await client.start_new(name, instance_id, json.loads(body) if body else None)
    except Exception as exc:  # the id is taken by a running instance, say
        return _json({"error": str(exc)}, 409)
    return client.create_check_status_response(req, instance_id)


@app.route(route="instances/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def get_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    status = await client.get_status(req.route_params["instance_id"], show_input=True)
    if status.runtime_status is None:
        return _json({"message": status.message}, 404)
    return _json(_status_json(status))


@app.route(route="instances/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    result = await client.purge_instance_history(req.route_params["instance_id"])
    return _json({"instancesDeleted": result.instances_deleted})


@app.route(route="instances/{instance_id}/terminate", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    reason = req.get_body().decode("utf-8")
    try:
        await client.terminate(req.route_params["instance_id"], reason)
    except Exception as exc:
        return _json({"error": str(exc)}, 404)
    return _json({"terminated": True}, 202)


@app.route(route="instances/{instance_id}/events/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    body = req.get_body()
    try:
        await client.raise_event(
            req.route_params["instance_id"],
            req.route_params["event"],
            json.loads(body) if body else None,
        )
    except Exception as exc:
        message = str(exc)
        return _json({"error": message}, 410 if "is gone" in message else 404)
    return _json({"raised": True}, 202)


@app.route(route="instances", methods=["GET"])
@app.durable_client_input(client_name="client")
async def list_instances(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    prefix = req.params.get("prefix", "")
    found = await client.get_status_all()
    return _json(
        sorted(
            (_status_json(s) for s in found if (s.instance_id or "").startswith(prefix)),
            key=lambda s: str(s["instanceId"]),
        )
    )


@app.route(route="attempts/{key}", methods=["GET"])
def attempts(req: func.HttpRequest) -> func.HttpResponse:
    with _ATTEMPTS_LOCK:
        return _json({"attempts": ATTEMPTS.get(req.route_params["key"], 0)})


# ---- orchestrators --------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    n = context.get_input() or 10
    context.set_custom_status({"stage": "fanning out", "tasks": n})
    results = yield context.task_all([context.call_activity("double", i) for i in range(n)])
    context.set_custom_status({"stage": "done", "tasks": len(results)})
    return sum(results)


@app.orchestration_trigger(context_name="context")
def failing_activity(context: df.DurableOrchestrationContext):
    yield context.call_activity("explode", context.get_input())
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def validating(context: df.DurableOrchestrationContext):
    context.set_custom_status("validating")
    amount = context.get_input()
    if amount < 0:
        raise ValueError("the amount must not be negative")
    doubled = yield context.call_activity("double", amount)
    return doubled


@app.orchestration_trigger(context_name="context")
def retried_activity(context: df.DurableOrchestrationContext):
    settings = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=200, max_number_of_attempts=settings["max_attempts"]
    )
    result = yield context.call_activity_with_retry(
        "flaky", options, {"key": context.instance_id, "fail_times": settings["fail_times"]}
    )
    return result


@app.orchestration_trigger(context_name="context")
def approval_or_timeout(context: df.DurableOrchestrationContext):
    seconds = context.get_input()
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    approval = context.wait_for_external_event("approve")
    winner = yield context.task_any([deadline, approval])
    if winner == approval:
        deadline.cancel()
        return {"approved_by": approval.result}
    return "timed out"


@app.orchestration_trigger(context_name="context")
def parent_of_fan_outs(context: df.DurableOrchestrationContext):
    first = yield context.call_sub_orchestrator("fan_out", 3)
    rest = yield context.task_all(
        [
            context.call_sub_orchestrator("fan_out", 4),
            context.call_sub_orchestrator("fan_out", 5, f"{context.instance_id}-five"),
        ]
    )
    return [first, *rest]


@app.orchestration_trigger(context_name="context")
def running_total(context: df.DurableOrchestrationContext):
    state = context.get_input() or {"n": 0, "total": 0}
    doubled = yield context.call_activity("double", state["n"])
    total = state["total"] + doubled
    if state["n"] < 3:
        context.continue_as_new({"n": state["n"] + 1, "total": total})
        return None
    return {"generation": state["n"], "total": total}


@app.orchestration_trigger(context_name="context")
def replay_safe(context: df.DurableOrchestrationContext):
    first_uuid = context.new_uuid()
    started_at = context.current_utc_datetime.isoformat()
    # The activity echoes what the first episode computed; later episodes replay this
    # code and must compute the same values again.
    echoed = yield context.call_activity("echo", {"uuid": first_uuid, "time": started_at})
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    second_uuid = context.new_uuid()
    return {
        "echoed": echoed,
        "replayed": {"uuid": first_uuid, "time": started_at},
        "second_uuid": second_uuid,
        "after_timer": context.current_utc_datetime.isoformat(),
    }


@app.orchestration_trigger(context_name="context")
def slow_work(context: df.DurableOrchestrationContext):
    seconds = context.get_input()
    context.set_custom_status("activities")
    work = [{"value": i, "seconds": seconds} for i in (1, 2, 3)]
    values = yield context.task_all([context.call_activity("slow_identity", w) for w in work])
    context.set_custom_status("timer")
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    context.set_custom_status("last activity")
    last = yield context.call_activity("slow_identity", {"value": 10, "seconds": seconds})
    return sum(values) + last


# ---- activities -----------------------------------------------------------------------


@app.activity_trigger(input_name="n")
def double(n: int) -> int:
    return n * 2


@app.activity_trigger(input_name="what")
def explode(what: str) -> str:
    raise ValueError(f"the {what} exploded")


@app.activity_trigger(input_name="work")
def flaky(work: dict) -> str:
    attempt = _count_attempt(work["key"])
    if attempt <= work["fail_times"]:
        raise RuntimeError(f"attempt {attempt} failed")
    return f"succeeded on attempt {attempt}"


@app.activity_trigger(input_name="value")
def echo(value: dict) -> dict:
    return value


@app.activity_trigger(input_name="work")
def slow_identity(work: dict) -> int:
    time.sleep(work["seconds"])
    return work["value"]
