"""The v2 network reference (`reference/002_*.txt`), example by example: each request as the
reference writes it (a real Bell circuit where it writes `...`), answered with the fields,
types and nesting it documents (`{"success": true, "data": {...}}`), every strategy and
aggregation method its tables name, and the error codes of its table that a request reaches.

The registered functions are called directly against Azurite; an orchestration runs in
process (`InProcessDurableClient`): the orchestrator and its activities, as the durable
engine would call them (the engine itself: tests/e2e/test_network_over_http.py)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.api import network, orchestration
from shared.jobs.repository import JobRepository
from shared.network.aggregation import Method
from shared.network.strategies import Strategy
from shared.orchestration.network_job import FINISH, POLL, RUN, orchestrate
from shared.services import Services
from tests.circuits import BELL

BASE = "/api/v2/network"
ACTIVITIES: dict[str, Callable[[dict[str, Any]], Any]] = {
    RUN: orchestration.network_run,
    POLL: orchestration.network_poll,
    FINISH: orchestration.network_finish,
}


class _Context:
    """What the orchestrator asks of a `DurableOrchestrationContext`, answered at once."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.current_utc_datetime = datetime(2026, 11, 21, tzinfo=UTC)

    def get_input(self) -> dict[str, Any]:
        return self.payload

    def call_activity(self, name: str, data: Any) -> Any:
        return ("call", (name, data))

    def task_all(self, tasks: list[Any]) -> Any:
        return ("all", tasks)

    def create_timer(self, at: datetime) -> Any:
        return ("timer", at)

    def set_custom_status(self, status: Any) -> None:
        pass

    def continue_as_new(self, payload: dict[str, Any]) -> None:
        self.payload = payload


def _run_orchestration(payload: dict[str, Any]) -> None:
    context = _Context(payload)
    generator: Generator[Any, Any, Any] = orchestrate(context)
    answer: Any = None
    try:
        while True:
            kind, data = generator.send(answer)
            if kind == "all":
                answer = [ACTIVITIES[name](d) for _, (name, d) in data]
            elif kind == "timer":
                context.current_utc_datetime = data
                answer = None
            else:
                name, d = data
                answer = ACTIVITIES[name](d)
    except StopIteration:
        return


class InProcessDurableClient:
    """A durable client whose `start_new` runs the orchestration to its end."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def start_new(self, name: str, instance_id: str, payload: dict[str, Any]) -> str:
        self.started.append(instance_id)
        _run_orchestration(payload)
        return instance_id

    async def terminate(self, instance_id: str, reason: str) -> None:
        pass


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user("enterprise")


def execute(http: Callable[..., Any], user: Any, body: dict[str, Any]) -> Any:
    client = InProcessDurableClient()
    # the function under the durable SDK's middleware, which builds a client from JSON
    function = inspect.unwrap(network.network_execute._function.get_user_function())
    return http(
        lambda req: asyncio.run(function(req, client=client)),
        "POST",
        f"{BASE}/execute",
        body=body,
        headers=user.headers,
    )


def data(answer: Any) -> dict[str, Any]:
    assert answer.status == 200, answer.body
    assert set(answer.body) == {"success", "data"} and answer.body["success"] is True
    assert isinstance(answer.body["data"], dict)
    return dict(answer.body["data"])


def assert_error(answer: Any, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert answer.body["success"] is False
    assert answer.body["error_code"] == code
    assert isinstance(answer.body["detail"], str) and answer.body["request_id"]


def assert_counts(counts: Any, shots: int) -> None:
    assert isinstance(counts, dict) and counts
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items())
    assert sum(counts.values()) == shots
    assert set(counts) <= {"00", "01", "10", "11"}


def assert_job_id(job_id: Any) -> None:
    """The v1 form: a canonical UUID string."""
    assert isinstance(job_id, str) and str(uuid.UUID(job_id)) == job_id


# -- Quick Examples ---------------------------------------------------------------------------


def test_execute_with_load_balancing_as_the_reference_writes_it(
    user: Any, http: Callable[..., Any]
) -> None:
    # given the reference's request
    body = {
        "qasm": BELL,
        "backends": ["ionq_simulator", "ibm_brisbane"],
        "strategy": "fastest",
        "shots": 1024,
    }
    # when
    found = data(execute(http, user, body))
    # then the documented fields, with their types
    assert_job_id(found["job_id"])
    assert found["backend"] in body["backends"]
    assert found["status"] == "completed"
    assert_counts(found["counts"], 1024)
    assert isinstance(found["queue_time_s"], int | float)
    assert isinstance(found["execution_time_s"], int | float)


def test_execute_on_all_backends_reports_the_retired_one_per_backend_and_aggregates_the_rest(
    services_env: Services, user: Any, http: Callable[..., Any]
) -> None:
    # given the reference's request, whose rigetti_aspen its supplier retired
    body = {
        "qasm": BELL,
        "backends": ["ionq_simulator", "ibm_brisbane", "rigetti_aspen"],
        "strategy": "all",
        "shots": 1024,
        "aggregate": True,
        "aggregation_method": "weighted_average",
    }
    # when
    found = data(execute(http, user, body))
    # then the two that run are aggregated and rigetti_aspen is reported skipped, with why
    assert_job_id(found["job_id"])
    assert found["status"] == "completed"
    results = found["results"]
    assert [r["backend"] for r in results] == body["backends"]
    for ran in results[:2]:
        assert ran["status"] == "completed"
        assert_counts(ran["counts"], 1024)
    skipped = results[2]
    assert (skipped["status"], skipped["counts"], skipped["error_code"]) == (
        "skipped",
        None,
        "BACKEND_RETIRED",
    )
    assert "rigetti_qpu_cepheus_1_108q" in skipped["detail"]
    assert_counts(found["aggregated_counts"], 1024)
    assert isinstance(found["aggregation_confidence"], float)
    assert 0.0 <= found["aggregation_confidence"] <= 1.0
    assert set(found["weights"]) == {"ionq_simulator", "ibm_brisbane"}
    # and only the two that ran were run (and so reserved, and charged)
    runs = list(JobRepository(services_env.storage).runs_of(user.user_id, found["job_id"]))
    assert len(runs) == 2
    # and the job reads back the same under its id
    again = data(
        http(
            network.network_job_status,
            "GET",
            f"{BASE}/execute/{found['job_id']}",
            headers=user.headers,
            route_params={"job_id": found["job_id"]},
        )
    )
    assert again["results"] == results and again["job_id"] == found["job_id"]


def test_network_status_has_the_documented_shape(user: Any, http: Callable[..., Any]) -> None:
    # when
    found = data(http(network.network_status, "GET", f"{BASE}/status", headers=user.headers))
    # then
    assert found["overall_status"] in ("operational", "degraded", "down")
    assert isinstance(found["total_capacity"], int) and found["total_capacity"] > 0
    assert isinstance(found["active_jobs"], int) and found["active_jobs"] >= 0
    listed = {}
    for backend in found["backends"]:
        assert set(backend) == {"id", "status", "queue_depth"}
        assert isinstance(backend["id"], str) and isinstance(backend["queue_depth"], int)
        listed[backend["id"]] = backend["status"]
    assert listed["ionq_simulator"] == listed["ibm_brisbane"] == "online"
    assert listed["rigetti_aspen"] == "retired"


# -- the tables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    ["fastest", "best_fidelity", "round_robin", "cost_optimized", "ordered", "all"],
)
def test_every_strategy_of_the_table_runs(
    strategy: str, user: Any, http: Callable[..., Any]
) -> None:
    assert strategy in {s.value for s in Strategy}
    body = {"qasm": BELL, "backends": ["qiskit_aer", "ionq_simulator"], "strategy": strategy}
    found = data(execute(http, user, body))
    assert found["status"] == "completed" and found["strategy"] == strategy
    if strategy == "all":
        assert [r["backend"] for r in found["results"]] == body["backends"]
        assert_counts(found["aggregated_counts"], 1024)
    else:
        assert found["backend"] in body["backends"]
        assert_counts(found["counts"], 1024)


@pytest.mark.parametrize(
    "method", ["weighted_average", "majority_vote", "confidence_weighted", "median"]
)
def test_every_aggregation_method_of_the_table_merges_a_fan_out_and_counts_given(
    method: str, user: Any, http: Callable[..., Any]
) -> None:
    assert method in {m.value for m in Method}
    # a fan-out merged by the method
    body = {
        "qasm": BELL,
        "backends": ["qiskit_aer", "ionq_simulator"],
        "strategy": "all",
        "shots": 1000,
        "aggregation_method": method,
    }
    found = data(execute(http, user, body))
    assert found["aggregation_method"] == method
    assert_counts(found["aggregated_counts"], 1000)
    # and counts given to /aggregate under the same name /execute takes
    given = {
        "results": [
            {"backend": "qiskit_aer", "counts": {"00": 500, "11": 500}},
            {"backend": "ionq_simulator", "counts": {"00": 520, "11": 480}},
        ],
        "aggregation_method": method,
    }
    merged = data(
        http(
            network.network_aggregate, "POST", f"{BASE}/aggregate", body=given, headers=user.headers
        )
    )
    assert merged["aggregation_method"] == method
    assert_counts(merged["aggregated_counts"], 1000)


def test_aggregate_takes_method_as_a_deprecated_synonym_but_not_two_different_names(
    user: Any, http: Callable[..., Any]
) -> None:
    results = [{"backend": "a", "counts": {"00": 5, "11": 5}}]

    def aggregate(**names: str) -> Any:
        return http(
            network.network_aggregate,
            "POST",
            f"{BASE}/aggregate",
            body={"results": results, **names},
            headers=user.headers,
        )

    assert data(aggregate(method="median"))["aggregation_method"] == "median"
    same = aggregate(method="median", aggregation_method="median")
    assert data(same)["aggregation_method"] == "median"
    assert aggregate(method="median", aggregation_method="majority_vote").status == 422
    assert_error(aggregate(aggregation_method="mean"), 400, "INVALID_AGGREGATION_METHOD")


def test_the_error_codes_of_the_table_that_a_request_reaches(
    user: Any, http: Callable[..., Any]
) -> None:
    unknown_strategy = {"qasm": BELL, "strategy": "quickest"}
    assert_error(execute(http, user, unknown_strategy), 400, "INVALID_STRATEGY")
    unknown_backend = {"qasm": BELL, "backends": ["ionq_simulator", "ibm_nowhere"]}
    assert_error(execute(http, user, unknown_backend), 404, "BACKEND_NOT_FOUND")
    for strategy in ("fastest", "all"):
        retired = {"qasm": BELL, "backends": ["rigetti_aspen", "braket_tn1"], "strategy": strategy}
        assert_error(execute(http, user, retired), 503, "NO_BACKENDS")


def test_a_single_backend_strategy_never_chooses_a_retired_backend(
    user: Any, http: Callable[..., Any]
) -> None:
    for strategy in ("fastest", "best_fidelity", "cost_optimized", "round_robin", "ordered"):
        body = {"qasm": BELL, "backends": ["rigetti_aspen", "qiskit_aer"], "strategy": strategy}
        assert data(execute(http, user, body))["backend"] == "qiskit_aer"


# -- names the references use -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "backend_id", "status"),
    [
        # the v2 reference's backend ids
        ("ionq_simulator", "ionq_simulator", "online"),
        ("ibm_brisbane", "ibm_brisbane", "online"),
        ("rigetti_aspen", "rigetti_aspen", "retired"),
        # the v1 reference's targets
        ("ionq.simulator", "ionq_simulator", "online"),
        ("ionq.aria", "ionq_qpu_aria_1", "online"),
        ("ionq.harmony", "ionq_harmony", "retired"),
        ("quantinuum.h1-1", "quantinuum_qpu_h1_1", "retired"),
        ("quantinuum.h1-2", "quantinuum_qpu_h1_2", "retired"),
        ("quantinuum.h2-1", "quantinuum_qpu_h2_1", "online"),
        # the QCOS Python client's backend ids
        ("statevector_sim", "qiskit_aer", "online"),
        ("simulator_aer", "qiskit_aer", "online"),
        ("aer_simulator", "qiskit_aer", "online"),
        ("ibm.sherbrooke", "ibm_sherbrooke", "online"),
        ("ibm.fez", "ibm_fez", "online"),
        ("azure_quantum.ionq_aria", "ionq_qpu_aria_1", "online"),
        ("braket.garnet", "braket_iqm_garnet", "online"),
        ("braket.sv1", "braket_sv1", "online"),
    ],
)
def test_every_name_the_references_use_resolves(
    name: str, backend_id: str, status: str, user: Any, http: Callable[..., Any]
) -> None:
    found = data(
        http(
            network.network_backend,
            "GET",
            f"{BASE}/backends/{name}",
            headers=user.headers,
            route_params={"backend_id": name},
        )
    )
    assert (found["id"], found["status"]) == (backend_id, status)
    if status == "retired":
        assert found["successor"] and found["status_detail"].startswith("Retired")
