"""The network's live view on Azurite (`shared.network.live`): a fan-out's progress as each
of its runs ends, and a backend's queue depth as jobs come and go, published as events off
the job path."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared import events
from shared.events import Event
from shared.jobs.repository import JobRepository
from shared.jobs.schemas import ExecuteRequest
from shared.network.live import Live
from shared.network.repository import NetworkRepository
from shared.network.schemas import NetworkExecuteRequest
from shared.network.service import Accepted
from shared.services import Services
from tests.circuits import BELL
from tests.orchestrations import NoOrchestrations

BACKENDS = ["qiskit_aer", "braket_iqm_garnet", "ionq_simulator"]


@pytest.fixture
def live(short_wait: None, services_env: Services) -> Iterator[Live]:
    network = services_env.network
    running = Live(
        NetworkRepository(services_env.storage),
        JobRepository(services_env.storage),
        network.state.queue_load,
        network.state.backend_status,
        refresh_seconds=0.05,
    ).start()
    yield running
    running.close()


@pytest.fixture
def seen() -> Iterator[list[Event]]:
    found: list[Event] = []
    stop = events.subscribe(found.append)
    yield found
    stop()


def test_each_run_that_ends_moves_the_fan_outs_progress_and_names_its_backend(
    services_env: Services, live: Live, seen: list[Event], make_user: Callable[..., Any]
) -> None:
    user = make_user("professional")
    principal = services_env.accounts.authenticate(user.api_key)
    network = services_env.network
    request = NetworkExecuteRequest(qasm=BELL, shots=200, strategy="all", backends=BACKENDS)
    accepted = network.execute(principal, request, NoOrchestrations())
    assert isinstance(accepted, Accepted)
    job_id = accepted.job_id

    # when the orchestration runs the three runs one after the other, then finishes
    for slot in range(3):
        network.run_slot(principal.user_id, job_id, slot, 0)
        assert live.wait_idle(10)
    network.finish(principal.user_id, job_id)

    mine = [e for e in seen if e.kind == "network_job" and e.id == job_id]
    # then the job's updates go queued, running 0/3 (its first run started), 1/3, 2/3, 3/3,
    # completed 3/3, each naming the run that ended and its backend
    assert [(e.status, e.progress and e.progress.runs_finished) for e in mine] == [
        ("queued", None),
        ("running", 0),
        ("running", 1),
        ("running", 2),
        ("running", 3),
        ("completed", 3),
    ]
    assert all(e.progress is not None and e.progress.runs_planned == 3 for e in mine)
    ended = [e.progress.run for e in mine if e.progress is not None and e.progress.run]
    assert [(r.backend, r.status) for r in ended] == [(b, "completed") for b in BACKENDS]
    assert [r.run_id for r in ended] == [f"{job_id}-{slot}-0" for slot in range(3)]
    # and each run's own updates say which network job they belong to
    runs = [e for e in seen if e.kind == "job" and e.network_job_id == job_id]
    assert {e.backend for e in runs} == set(BACKENDS)


def test_a_backends_queue_depth_is_published_when_jobs_come_and_go(
    services_env: Services, live: Live, seen: list[Event], make_user: Callable[..., Any]
) -> None:
    user = make_user("professional")
    principal = services_env.accounts.authenticate(user.api_key)
    before = services_env.network.state.queue_load(0.0).get("qiskit_aer", 0)

    # when two jobs are queued on the local simulator (the queue function is not running)
    for _ in range(2):
        services_env.jobs.submit(principal, _execute(BELL))
    assert live.wait_idle(10)
    _wait_for(lambda: _depths(seen, "qiskit_aer")[-1:] == [before + 2])

    # then the depth reached was published with the backend's status
    published = [e for e in seen if e.kind == "backend" and e.id == "qiskit_aer"]
    assert published[-1].status == "online" and published[-1].queue_depth == before + 2


def _execute(qasm: str) -> ExecuteRequest:
    return ExecuteRequest(qasm=qasm, shots=100)


def _depths(seen: list[Event], backend_id: str) -> list[int | None]:
    return [e.queue_depth for e in seen if e.kind == "backend" and e.id == backend_id]


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
