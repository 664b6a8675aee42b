"""How far a network job is: its runs' ids and the slots that ran to their end."""

from __future__ import annotations

import uuid

from shared.jobs.models import Job, JobStatus, network_job_of, run_id, run_of
from shared.network.repository import JobKind, NetworkJob, Slot
from shared.network.strategies import Strategy

JOB_ID = str(uuid.UUID(int=7))


def job(*slots: list[str]) -> NetworkJob:
    return NetworkJob(
        user_id="u1",
        job_id=JOB_ID,
        status=JobStatus.QUEUED,
        kind=JobKind.SINGLE if len(slots) == 1 else JobKind.ALL,
        strategy=Strategy.ORDERED if len(slots) == 1 else Strategy.ALL,
        created_at="2026-01-01T00:00:00Z",
        groups=[],
        slots=[Slot(0, backends) for backends in slots],
    )


def run(slot: int, attempt: int, status: JobStatus) -> Job:
    return Job("u1", run_id(JOB_ID, slot, attempt), status, 100, "2026-01-01T00:00:00Z")


def test_a_runs_id_names_its_network_job_slot_and_attempt() -> None:
    assert run_of(run_id(JOB_ID, 12, 3)) == (JOB_ID, 12, 3)
    assert network_job_of(run_id(JOB_ID, 0, 0)) == JOB_ID
    assert network_job_of(JOB_ID) is None  # a v1 job of its own
    assert network_job_of(f"{JOB_ID}-x-0") is None
    assert network_job_of("a-1-0") is None


def test_a_failed_run_with_a_backend_left_is_not_finished_until_the_next_ends() -> None:
    ordered = job(["ibm_brisbane", "qiskit_aer"])

    assert ordered.runs_finished([run(0, 0, JobStatus.FAILED)]) == 0
    assert ordered.runs_finished([run(0, 0, JobStatus.FAILED), run(0, 1, JobStatus.QUEUED)]) == 0
    assert ordered.runs_finished([run(0, 0, JobStatus.FAILED), run(0, 1, JobStatus.FAILED)]) == 1
    assert ordered.runs_finished([run(0, 0, JobStatus.COMPLETED)]) == 1


def test_a_fan_out_counts_each_slot_whose_run_ended() -> None:
    fan_out = job(["qiskit_aer"], ["braket_iqm_garnet"], ["ionq_simulator"])
    runs = [
        run(0, 0, JobStatus.COMPLETED),
        run(1, 0, JobStatus.PROCESSING),
        run(2, 0, JobStatus.FAILED),
    ]

    assert fan_out.runs_finished(runs) == 2
    assert fan_out.runs_finished([]) == 0
