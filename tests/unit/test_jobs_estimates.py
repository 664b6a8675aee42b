"""`shared.jobs.estimates.Estimator`: how long a job queued now will take, from the queue's depth
and the execution times every worker measured (shared through one row), never failing a submit.
Against an in-memory table; the estimate over HTTP is in tests/integration/test_estimates.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from shared.jobs import estimates
from shared.jobs.estimates import Estimator
from shared.jobs.repository import JobRepository
from shared.storage.clients import STATS_TABLE
from tests.tables import MemoryStorage


class Queue:
    """The job repository's queue depth, as the estimator reads it."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.reads = 0
        self.fault: Exception | None = None

    def queue_depth(self) -> int:
        self.reads += 1
        if self.fault is not None:
            raise self.fault
        return self.depth


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    fake = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(estimates, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


def estimator(storage: MemoryStorage, queue: Queue, parallelism: int = 2) -> Estimator:
    return Estimator(storage.as_storage(), cast(JobRepository, queue), parallelism)


def measured(storage: MemoryStorage, avg_ms: float) -> None:
    """The shared row, as the workers left it."""
    storage.table(STATS_TABLE).upsert_entity(
        {"PartitionKey": "qiskit_aer", "RowKey": "recent", "avg_ms": avg_ms}
    )


def test_a_job_on_an_idle_queue_with_nothing_measured_takes_a_second(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    assert estimator(storage, Queue()).seconds() == 1


def test_the_wait_is_the_queue_in_waves_of_the_workers_then_the_jobs_own_run(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    # given jobs that take 1.5 s, 10 queued, 2 at a time
    measured(storage, 1500.0)
    e = estimator(storage, Queue(depth=10), parallelism=2)
    # when / then: 5 waves of 1.5 s, then 1.5 s of its own
    assert e.seconds() == 9
    assert e.mean_seconds() == 1.5
    # and a job whose own run is estimated at 20 s waits the queue and runs its own time
    assert e.seconds(run_s=20.0) == 28


def test_what_one_worker_measures_reaches_every_instance(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    # given a worker and a submitting instance sharing storage
    worker, submitter = estimator(storage, Queue()), estimator(storage, Queue())
    assert submitter.mean_seconds() == 0.05  # nothing measured yet
    # when the worker measures a 1050 ms job (a moving average from 50 ms: 250 ms)
    worker.record(1050.0)
    # then the submitter sees it once its figures are due to be read again
    assert submitter.mean_seconds() == 0.05
    monotonic.now += 5.0
    assert submitter.mean_seconds() == pytest.approx(0.25)


def test_the_shared_figures_are_read_at_most_every_five_seconds(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    queue = Queue(depth=4)
    e = estimator(storage, queue)
    for _ in range(20):
        e.seconds()
    assert queue.reads == 1
    monotonic.now += 5.0
    e.seconds()
    assert queue.reads == 2


def test_a_worker_writes_the_average_at_most_every_two_seconds(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    # given
    worker = estimator(storage, Queue())
    table = storage.table(STATS_TABLE)
    # when it measures ten jobs in one moment
    for _ in range(10):
        worker.record(100.0)
    # then it wrote once; the next write, after 2 s, carries every sample
    assert table.calls == 1
    monotonic.now += 2.0
    worker.record(100.0)
    assert table.calls == 2
    row = table.row("qiskit_aer", "recent")
    assert row is not None and row["avg_ms"] == pytest.approx(100 - 50 * 0.8**11)


def test_storage_failing_never_fails_a_submit_or_a_job_and_the_last_figures_stand(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    # given figures read once: 1 s jobs, 4 queued, 2 at a time
    measured(storage, 1000.0)
    queue = Queue(depth=4)
    e = estimator(storage, queue)
    assert e.seconds() == 3
    # when storage fails for reads and writes
    storage.table(STATS_TABLE).down()
    queue.fault = ConnectionError("queue unreachable")
    monotonic.now += 10.0
    e.record(5000.0)
    # then the estimate still answers, from the last figures
    assert e.seconds() == 3
