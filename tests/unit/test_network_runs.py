"""`shared.network.runs.RunOutcome` and `shared.network.results`: how a run stands, as the
orchestration holds it, and a circuit's result merged from its runs' rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from shared.jobs.models import Job, JobStatus, run_id
from shared.network.repository import Group, JobKind, NetworkJob, Slot
from shared.network.results import SKIPPED, group_result, public_group
from shared.network.runs import RunOutcome, RunStatus
from shared.network.strategies import Strategy

JOB_ID = str(uuid.UUID(int=42))


def run(slot: int, attempt: int, status: JobStatus, **fields: Any) -> Job:
    return Job("u1", run_id(JOB_ID, slot, attempt), status, 100, "2026-01-01T00:00:00Z", **fields)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (JobStatus.COMPLETED, RunStatus.COMPLETED),
        (JobStatus.CANCELLED, RunStatus.CANCELLED),
        (JobStatus.QUEUED, RunStatus.RUNNING),
        (JobStatus.PROCESSING, RunStatus.RUNNING),
    ],
)
def test_a_runs_outcome_is_what_its_row_shows(status: JobStatus, expected: RunStatus) -> None:
    outcome = RunOutcome.of_run(1, 0, "qiskit_aer", run(1, 0, status))

    assert outcome.status is expected and outcome.error_code is None


def test_a_failed_run_carries_its_reason_through_the_orchestration_and_back() -> None:
    failed = run(0, 1, JobStatus.FAILED, error_code="SUPPLIER_ERROR", error_detail="down")
    outcome = RunOutcome.of_run(0, 1, "ibm_brisbane", failed)

    held = outcome.to_dict()

    assert held == {
        "slot": 0,
        "attempt": 1,
        "backend": "ibm_brisbane",
        "run_id": run_id(JOB_ID, 0, 1),
        "status": "failed",
        "error_code": "SUPPLIER_ERROR",
        "detail": "down",
    }
    assert RunOutcome.from_dict(held) == outcome
    ok = RunOutcome.of_run(0, 0, "qiskit_aer", run(0, 0, JobStatus.COMPLETED)).to_dict()
    assert "error_code" not in ok  # only a failure says why


def fan_out(backends: list[str], skipped: list[dict[str, str]] | None = None) -> NetworkJob:
    return NetworkJob(
        user_id="u1",
        job_id=JOB_ID,
        status=JobStatus.QUEUED,
        kind=JobKind.ALL,
        strategy=Strategy.ALL,
        created_at="2026-01-01T00:00:00Z",
        groups=[
            Group(
                "c.qasm",
                100,
                fidelity={b: 0.9 for b in backends},
                skipped=skipped or [],
            )
        ],
        slots=[Slot(0, [b]) for b in backends],
    )


def results_of(counts: Mapping[str, dict[str, int]]) -> Any:
    def result_of(child: Job) -> dict[str, Any]:
        return {"counts": counts[child.job_id], "metadata": {"execution_time_ms": 2.0}}

    return result_of


def test_a_fan_out_merges_the_runs_that_completed_and_lists_the_others_with_their_reason() -> None:
    job = fan_out(
        ["qiskit_aer", "braket_sv1", "ibm_brisbane"],
        skipped=[
            {
                "backend": "rigetti_aspen",
                "status": SKIPPED,
                "error_code": "BACKEND_RETIRED",
                "detail": "retired",
            }
        ],
    )
    runs = {
        r.job_id: r
        for r in (
            run(0, 0, JobStatus.COMPLETED),
            run(1, 0, JobStatus.COMPLETED),
            run(2, 0, JobStatus.FAILED, error_code="SUPPLIER_ERROR", error_detail="down"),
        )
    }
    counts = {
        run_id(JOB_ID, 0, 0): {"00": 50, "11": 50},
        run_id(JOB_ID, 1, 0): {"00": 60, "11": 40},
    }

    entry = group_result(job, 0, runs, results_of(counts))

    assert entry["status"] == "completed"
    assert [r["backend"] for r in entry["results"]] == ["qiskit_aer", "braket_sv1", "rigetti_aspen"]
    assert entry["results"][2]["counts"] is None  # skipped: shown, never run
    assert [(f["backend"], f["error_code"]) for f in entry["failed"]] == [
        ("ibm_brisbane", "SUPPLIER_ERROR"),
        ("rigetti_aspen", "BACKEND_RETIRED"),
    ]
    assert sum(entry["aggregated_counts"].values()) == 100
    shown = public_group(entry, single=False)
    assert shown["aggregation_method"] == "weighted_average" and "index" not in shown


def test_a_circuit_no_backend_ran_fails_naming_each_reason() -> None:
    job = fan_out(["qiskit_aer"])
    runs = {run_id(JOB_ID, 0, 0): run(0, 0, JobStatus.CANCELLED)}

    entry = group_result(job, 0, runs, results_of({}))

    assert entry["status"] == "failed" and entry["error_code"] == "ALL_BACKENDS_FAILED"
    assert "qiskit_aer: The run was cancelled" in entry["error_detail"]
