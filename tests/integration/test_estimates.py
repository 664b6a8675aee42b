"""Estimated time: recent measured execution times and the queue's depth, not a constant."""

from __future__ import annotations

from dataclasses import dataclass

from funchost.testing import Azurite
from shared.config import StorageSettings
from shared.jobs.estimates import Estimator
from shared.storage import Storage


@dataclass
class Queue:
    depth: int

    def queue_depth(self) -> int:
        return self.depth


def test_the_estimate_follows_measured_times_and_the_queue_depth(azurite: Azurite) -> None:
    storage = Storage(StorageSettings(connection_string=azurite.connection_string))
    queue = Queue(depth=0)
    # given a worker that measured jobs of about 3 s
    worker = Estimator(storage, queue, parallelism=16, write_every_s=0)  # type: ignore[arg-type]
    for _ in range(30):
        worker.record(3000.0)
    # when another instance estimates with an empty queue, then with two waves queued
    empty = Estimator(storage, queue, parallelism=16).seconds()  # type: ignore[arg-type]
    queue.depth = 32
    busy = Estimator(storage, queue, parallelism=16).seconds()  # type: ignore[arg-type]
    # then the estimate is one job's time, and three jobs' times behind two full waves
    assert empty == 3
    assert busy == 9
