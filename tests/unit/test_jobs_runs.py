"""`shared.jobs.runs`: the pieces every way of finishing a job shares: a failure's fields, which
errors are the job's own fault, the token a supplier dedupes on, and a result's metadata.
(`Runs` itself writes rows and the ledger: tests/integration/ cover it.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import clock
from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import Settings
from shared.errors import (
    ApiError,
    InvalidQasm,
    LimitExceeded,
    ServiceUnavailable,
    StorageUnavailable,
)
from shared.jobs.models import Job, JobStatus
from shared.jobs.runs import Outcome, client_token, failure, permanent, run_metadata
from tests.circuits import BELL

LIMITS = CircuitLimits.from_limits(Settings.from_env({}).limits, max_qubits=20)
CREATED = "2026-03-14T12:00:00.000Z"
NOW = datetime(2026, 3, 14, 12, 0, 5, tzinfo=UTC)


def job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "user_id": "user-1",
        "job_id": "job-1",
        "status": JobStatus.PROCESSING,
        "shots": 1000,
        "created_at": CREATED,
    }
    values.update(fields)
    return Job(**values)


def bell() -> ParsedCircuit:
    return parse_circuit(BELL, LIMITS)


def test_a_failure_records_the_code_a_bounded_reason_and_when(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    # when a job fails with a very long reason
    fields = failure("SUPPLIER_REJECTED", "x" * 5000)
    # then
    assert fields == {
        "status": JobStatus.FAILED,
        "completed_at": "2026-03-14T12:00:05.000Z",
        "error_code": "SUPPLIER_REJECTED",
        "error_detail": "x" * 1000,
    }


@pytest.mark.parametrize(
    ("error", "is_permanent"),
    [
        (InvalidQasm("line 3: unknown gate"), True),
        (LimitExceeded("too many qubits"), True),
        (ApiError("refused"), True),
        (ServiceUnavailable("the supplier is down"), False),
        (StorageUnavailable(), False),
        (ConnectionError("reset"), False),
        (KeyError("x"), False),
    ],
)
def test_only_the_jobs_own_fault_is_permanent_and_outages_are_retried(
    error: BaseException, is_permanent: bool
) -> None:
    assert permanent(error) is is_permanent


def test_a_supplier_token_is_stable_for_a_row_and_distinct_for_any_other_row() -> None:
    # given one job row
    token = client_token(job())
    # then it is a UUID, the same for the same row, different for another user, another
    # job, or another row that reused the job id later
    assert str(uuid.UUID(token)) == token
    assert client_token(job(status=JobStatus.QUEUED, shots=5)) == token
    assert client_token(job(user_id="user-2")) != token
    assert client_token(job(job_id="job-2")) != token
    assert client_token(job(created_at="2026-03-15T12:00:00.000Z")) != token


def test_the_metadata_describes_the_run_and_its_wait_from_acceptance_to_claim() -> None:
    # given a local job claimed 2.5 s after it was accepted
    claimed = job(started_at="2026-03-14T12:00:02.500Z")
    # when
    metadata = run_metadata(claimed, bell(), execution_time_ms=12.34567, method="stabilizer")
    # then
    assert metadata.model_dump() == {
        "shots": 1000,
        "backend": "qiskit_aer",
        "execution_time_ms": 12.346,
        "num_qubits": 2,
        "num_clbits": 2,
        "method": "stabilizer",
        "measured_all": False,
        "qasm_version": 2,
        "depth": 3,
        "operations": 4,
        "queue_time_ms": 2500.0,
    }  # a local job's supplier, mode and task id are unset, so left out


def test_a_suppliers_own_queue_time_wins_and_a_run_in_the_request_has_none() -> None:
    cloud = job(
        supplier="braket",
        backend="forte-1",
        mode="cloud",
        supplier_job_id="arn:task/1",
        started_at="2026-03-14T12:00:02.000Z",
    )
    metadata = run_metadata(cloud, bell(), execution_time_ms=1.0, method="qpu", queue_time_ms=9.0)
    assert metadata.queue_time_ms == 9.0
    assert (metadata.backend, metadata.supplier_job_id) == ("braket_ionq_forte_1", "arn:task/1")
    in_request = run_metadata(job(), bell(), execution_time_ms=1.0, method="statevector")
    assert in_request.queue_time_ms is None


def test_a_clock_skew_never_makes_a_negative_wait() -> None:
    skewed = job(started_at="2026-03-14T11:59:59.000Z")  # claimed "before" it was accepted
    assert run_metadata(skewed, bell(), execution_time_ms=1.0, method="m").queue_time_ms == 0.0


def test_a_circuit_without_measurements_is_reported_as_measured_whole() -> None:
    unmeasured = parse_circuit(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\ncx q[0],q[1];\n', LIMITS
    )
    assert run_metadata(job(), unmeasured, execution_time_ms=1, method="m").measured_all is True


def test_an_outcome_is_stored_and_answered_with_the_same_counts_and_metadata() -> None:
    # given a finished simulation
    metadata = run_metadata(job(), bell(), execution_time_ms=3.0, method="stabilizer")
    outcome = Outcome(counts={"00": 489, "11": 511}, method="stabilizer", metadata=metadata)
    # when / then
    assert outcome.stored() == {"counts": {"00": 489, "11": 511}, "metadata": metadata.model_dump()}
    answer = outcome.response(job())
    assert (answer.job_id, answer.status, answer.counts) == ("job-1", "completed", outcome.counts)
    assert answer.metadata == metadata
