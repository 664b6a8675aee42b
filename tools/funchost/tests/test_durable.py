"""Durable Functions under funchost, driven over HTTP against Azurite.

The sample app (tests/apps/durable) starts orchestrations through an HTTP function with
the durable client binding, and exposes the client's status, terminate, purge, raise
event and list calls as HTTP functions too. Tests poll the management API the check
status response points at, as a user's code would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from conftest import AppRunner, RunningApp

WEBHOOKS = "/runtime/webhooks/durabletask"
RUNNING = ("Pending", "Running")


@pytest.fixture(scope="module")
def durable(run_app_module: AppRunner) -> Iterator[RunningApp]:
    yield run_app_module.start("durable")


def new_id(prefix: str) -> str:
    """An instance id no other test uses (the task hub is shared by the module)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start(
    app: RunningApp, orchestrator: str, instance_id: str, payload: Any = None
) -> dict[str, Any]:
    """Start through the app's HTTP starter; the check status response's body."""
    response = requests.post(
        f"{app.url}/api/start/{orchestrator}/{instance_id}",
        json=payload,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["id"] == instance_id
    return body


def status(app: RunningApp, instance_id: str) -> requests.Response:
    return requests.get(f"{app.url}{WEBHOOKS}/instances/{instance_id}", timeout=10)


def wait_until(
    app: RunningApp, instance_id: str, condition: Any, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll the management API until `condition(status body)` holds; that body."""
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        response = status(app, instance_id)
        if response.status_code in (200, 202):
            body = response.json()
            if condition(body):
                return dict(body)
        time.sleep(0.1)
    tail = "\n".join(app.host.log_text().splitlines()[-60:])
    raise AssertionError(
        f"{instance_id} never reached the expected state in {timeout:g}s; last status "
        f"{body!r}\n--- funchost log ---\n{tail}"
    )


def wait_done(app: RunningApp, instance_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll until the instance has finished; its status (checked to come with a 200)."""
    body = wait_until(app, instance_id, lambda b: b["runtimeStatus"] not in RUNNING, timeout)
    assert status(app, instance_id).status_code == 200
    return body


def client_status(app: RunningApp, instance_id: str) -> requests.Response:
    """The status as the SDK's client.get_status sees it (through the app)."""
    return requests.get(f"{app.url}/api/instances/{instance_id}", timeout=10)


def raise_event(app: RunningApp, instance_id: str, event: str, data: Any) -> requests.Response:
    return requests.post(
        f"{app.url}/api/instances/{instance_id}/events/{event}", json=data, timeout=10
    )


def attempts(app: RunningApp, key: str) -> int:
    response = requests.get(f"{app.url}/api/attempts/{key}", timeout=10)
    assert response.status_code == 200, response.text
    return int(response.json()["attempts"])


# ---- running orchestrations -------------------------------------------------------------


def test_fan_out_of_ten_activities_sums_their_results_and_shows_custom_status(
    durable: RunningApp,
) -> None:
    # given
    instance_id = new_id("fanout")

    # when
    urls = start(durable, "fan_out", instance_id, 10)
    done = wait_done(durable, instance_id)

    # then
    assert urls["statusQueryGetUri"].startswith(f"{durable.url}{WEBHOOKS}/instances/{instance_id}")
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == sum(2 * i for i in range(10))
    assert done["customStatus"] == {"stage": "done", "tasks": 10}
    seen_by_client = client_status(durable, instance_id).json()
    assert seen_by_client["runtimeStatus"] == "Completed"
    assert seen_by_client["output"] == 90
    assert seen_by_client["input"] == 10
    assert seen_by_client["customStatus"] == {"stage": "done", "tasks": 10}


def test_status_query_uri_of_the_check_status_response_answers_202_then_200(
    durable: RunningApp,
) -> None:
    # given
    instance_id = new_id("statusuri")
    urls = start(durable, "approval_or_timeout", instance_id, 1.0)

    # when
    while_waiting = requests.get(urls["statusQueryGetUri"], timeout=10)
    wait_done(durable, instance_id)
    after = requests.get(urls["statusQueryGetUri"], timeout=10)

    # then
    assert while_waiting.status_code == 202
    assert while_waiting.json()["runtimeStatus"] in RUNNING
    assert after.status_code == 200
    assert after.json()["output"] == "timed out"


def test_failing_activity_fails_the_instance_with_the_activity_error(durable: RunningApp) -> None:
    # given
    instance_id = new_id("failing")

    # when
    start(durable, "failing_activity", instance_id, "rocket")
    done = wait_done(durable, instance_id)

    # then
    assert done["runtimeStatus"] == "Failed"
    assert "the rocket exploded" in str(done["output"])
    assert client_status(durable, instance_id).json()["runtimeStatus"] == "Failed"


def test_orchestrator_that_raises_fails_with_its_own_message(durable: RunningApp) -> None:
    # given
    instance_id = new_id("rejected")

    # when
    start(durable, "validating", instance_id, -5)
    done = wait_done(durable, instance_id)

    # then
    assert done["runtimeStatus"] == "Failed"
    assert "the amount must not be negative" in str(done["output"])
    assert done["customStatus"] == "validating"


def test_retried_activity_completes_with_the_third_attempts_result(durable: RunningApp) -> None:
    # given an activity that fails twice, retried up to three times
    instance_id = new_id("retryok")

    # when
    start(durable, "retried_activity", instance_id, {"fail_times": 2, "max_attempts": 3})
    done = wait_done(durable, instance_id)

    # then
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == "succeeded on attempt 3"
    assert attempts(durable, instance_id) == 3


def test_retried_activity_that_always_fails_ends_failed_after_max_attempts(
    durable: RunningApp,
) -> None:
    # given an activity that always fails, retried up to three times
    instance_id = new_id("retryfail")

    # when
    start(durable, "retried_activity", instance_id, {"fail_times": 99, "max_attempts": 3})
    done = wait_done(durable, instance_id)

    # then
    assert done["runtimeStatus"] == "Failed"
    assert "attempt 3 failed" in str(done["output"])
    time.sleep(0.5)  # a fourth attempt would be due 200 ms after the third
    assert attempts(durable, instance_id) == 3


def test_external_event_raised_before_the_timer_wins_the_race(durable: RunningApp) -> None:
    # given an orchestration waiting for approval with a 20 s deadline
    instance_id = new_id("approved")
    started = time.monotonic()
    start(durable, "approval_or_timeout", instance_id, 20)
    wait_until(durable, instance_id, lambda b: b["runtimeStatus"] == "Running")

    # when
    raised = raise_event(durable, instance_id, "approve", {"user": "ana"})
    done = wait_done(durable, instance_id)

    # then
    assert raised.status_code == 202, raised.text
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == {"approved_by": {"user": "ana"}}
    assert time.monotonic() - started < 15


def test_timer_wins_the_race_when_no_event_arrives(durable: RunningApp) -> None:
    # given an orchestration waiting for approval with a 1 s deadline
    instance_id = new_id("timedout")
    started = time.monotonic()

    # when
    start(durable, "approval_or_timeout", instance_id, 1)
    done = wait_done(durable, instance_id)

    # then
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == "timed out"
    assert time.monotonic() - started >= 1.0


# ---- managing instances through the client --------------------------------------------


def test_raising_an_event_on_a_finished_instance_is_refused_as_gone(durable: RunningApp) -> None:
    # given
    instance_id = new_id("finished")
    start(durable, "approval_or_timeout", instance_id, 0.2)
    wait_done(durable, instance_id)

    # when
    late = raise_event(durable, instance_id, "approve", {"user": "late"})

    # then
    assert late.status_code == 410, late.text
    assert "is gone" in late.json()["error"]
    assert status(durable, instance_id).json()["output"] == "timed out"


def test_raising_an_event_on_an_unknown_instance_is_not_found(durable: RunningApp) -> None:
    # given
    instance_id = new_id("neverstarted")

    # when
    response = raise_event(durable, instance_id, "approve", {"user": "nobody"})

    # then
    assert response.status_code == 404
    assert f"No instance with ID {instance_id}" in response.json()["error"]
    assert status(durable, instance_id).status_code == 404


def test_terminating_a_waiting_instance_marks_it_terminated_with_the_reason(
    durable: RunningApp,
) -> None:
    # given an orchestration waiting on a 30 s deadline
    instance_id = new_id("terminated")
    start(durable, "approval_or_timeout", instance_id, 30)
    wait_until(durable, instance_id, lambda b: b["runtimeStatus"] == "Running")

    # when
    response = requests.post(
        f"{durable.url}/api/instances/{instance_id}/terminate",
        data="cancelled by operator",
        timeout=10,
    )
    done = wait_done(durable, instance_id, timeout=5)

    # then
    assert response.status_code == 202, response.text
    assert done["runtimeStatus"] == "Terminated"
    assert done["output"] == "cancelled by operator"
    assert client_status(durable, instance_id).json()["runtimeStatus"] == "Terminated"
    late = raise_event(durable, instance_id, "approve", {"user": "late"})
    assert late.status_code == 410


def test_purged_instance_disappears_from_status_and_listing(durable: RunningApp) -> None:
    # given a finished instance the client lists
    prefix = new_id("purged")
    instance_id = f"{prefix}-one"
    start(durable, "fan_out", instance_id, 2)
    wait_done(durable, instance_id)
    listed = requests.get(f"{durable.url}/api/instances", params={"prefix": prefix}, timeout=10)
    assert [(s["instanceId"], s["runtimeStatus"]) for s in listed.json()] == [
        (instance_id, "Completed")
    ]

    # when
    purged = requests.delete(f"{durable.url}/api/instances/{instance_id}", timeout=10)

    # then
    assert purged.json() == {"instancesDeleted": 1}
    assert status(durable, instance_id).status_code == 404
    assert client_status(durable, instance_id).status_code == 404
    after = requests.get(f"{durable.url}/api/instances", params={"prefix": prefix}, timeout=10)
    assert after.json() == []
    again = requests.delete(f"{durable.url}/api/instances/{instance_id}", timeout=10)
    assert again.json() == {"instancesDeleted": 0}


def test_starting_an_id_that_is_running_is_refused_but_a_finished_one_can_restart(
    durable: RunningApp,
) -> None:
    # given
    instance_id = new_id("reuse")
    start(durable, "approval_or_timeout", instance_id, 30)
    wait_until(durable, instance_id, lambda b: b["runtimeStatus"] == "Running")

    # when
    duplicate = requests.post(f"{durable.url}/api/start/fan_out/{instance_id}", timeout=10)
    raise_event(durable, instance_id, "approve", "first")
    first = wait_done(durable, instance_id)
    start(durable, "fan_out", instance_id, 3)
    second = wait_done(durable, instance_id)

    # then
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["error"]
    assert first["output"] == {"approved_by": "first"}
    assert (second["name"], second["output"]) == ("fan_out", 6)


# ---- composition and replay --------------------------------------------------------------


def test_sub_orchestrations_return_their_outputs_to_the_parent(durable: RunningApp) -> None:
    # given
    instance_id = new_id("parent")

    # when
    start(durable, "parent_of_fan_outs", instance_id)
    done = wait_done(durable, instance_id, timeout=20)

    # then
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == [6, 12, 20]
    child = status(durable, f"{instance_id}-five")
    assert child.status_code == 200
    assert (child.json()["runtimeStatus"], child.json()["output"]) == ("Completed", 20)


def test_continue_as_new_restarts_with_the_new_input_until_done(durable: RunningApp) -> None:
    # given
    instance_id = new_id("generations")

    # when
    start(durable, "running_total", instance_id, {"n": 0, "total": 0})
    done = wait_done(durable, instance_id)

    # then
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == {"generation": 3, "total": 0 + 2 + 4 + 6}
    assert done["input"] == {"n": 3, "total": 6}


def test_new_uuid_and_current_time_are_the_same_on_every_replay(durable: RunningApp) -> None:
    # given an orchestrator that hands a uuid and its current time to an activity,
    # then replays past them twice more
    instance_id = new_id("replay")

    # when
    start(durable, "replay_safe", instance_id)
    done = wait_done(durable, instance_id)

    # then
    output = done["output"]
    assert done["runtimeStatus"] == "Completed"
    assert output["replayed"] == output["echoed"]
    assert uuid.UUID(output["replayed"]["uuid"])
    assert output["second_uuid"] != output["replayed"]["uuid"]
    assert output["after_timer"] > output["replayed"]["time"]


# ---- crashes -----------------------------------------------------------------------------


@pytest.fixture
def crash_app(run_app: AppRunner) -> RunningApp:
    """The durable app on a task hub of its own, so its restarts resume only its work."""
    hub = f"Crash{uuid.uuid4().hex[:10]}"
    return run_app.start("durable", host_json={"extensions": {"durableTask": {"hubName": hub}}})


def test_instance_completes_after_the_host_is_killed_while_activities_run(
    crash_app: RunningApp,
) -> None:
    # given three 1 s activities running
    instance_id = new_id("crashwork")
    start(crash_app, "slow_work", instance_id, 1.0)
    wait_until(crash_app, instance_id, lambda b: b["customStatus"] == "activities")
    time.sleep(0.3)
    assert "Executed 'Functions.slow_identity'" not in crash_app.host.log_text()

    # when
    crash_app.host.kill()
    log_before_restart = len(crash_app.host.log_text())
    crash_app.host.start()
    done = wait_done(crash_app, instance_id, timeout=20)

    # then
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == 1 + 2 + 3 + 10
    restarted_log = crash_app.host.log_text()[log_before_restart:]
    assert "resumed 1 unfinished orchestration(s)" in restarted_log


def test_instance_completes_after_the_host_is_killed_while_a_timer_is_pending(
    crash_app: RunningApp,
) -> None:
    # given the activities done and a 1 s timer pending
    instance_id = new_id("crashtimer")
    start(crash_app, "slow_work", instance_id, 1.0)
    wait_until(crash_app, instance_id, lambda b: b["customStatus"] == "timer")

    # when
    crash_app.host.kill()
    log_before_restart = len(crash_app.host.log_text())
    time.sleep(1.0)  # the timer comes due while no host runs
    crash_app.host.start()
    done = wait_done(crash_app, instance_id, timeout=20)

    # then
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == 1 + 2 + 3 + 10
    restarted_log = crash_app.host.log_text()[log_before_restart:]
    assert "resumed 1 unfinished orchestration(s)" in restarted_log
