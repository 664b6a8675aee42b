"""`shared.jobs.cancel.cancel_row`: one way to cancel a job's row, whoever races it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from shared.errors import Conflict
from shared.jobs.cancel import cancel_row
from shared.jobs.models import JobStatus


@dataclass
class Row:
    status: JobStatus
    version: int = 0


class Table:
    """One row, written only when unchanged since it was read (an ETag's rule)."""

    def __init__(self, status: JobStatus) -> None:
        self.row = Row(status)
        self.writes: list[Mapping[str, Any]] = []
        self.race_once = False

    def read(self) -> Row:
        return Row(self.row.status, self.row.version)

    def update(self, read: Row, changes: Mapping[str, Any]) -> bool:
        if self.race_once:  # another writer changed it since it was read
            self.race_once = False
            self.row.version += 1
            return False
        if read.version != self.row.version:
            return False
        self.row = Row(changes["status"], self.row.version + 1)
        self.writes.append(changes)
        return True


def test_an_open_job_is_cancelled_once_with_its_end_time() -> None:
    table = Table(JobStatus.QUEUED)
    seen: list[JobStatus] = []

    row, cancelled = cancel_row("j1", table.read, table.update, lambda r: seen.append(r.status))

    assert cancelled and row.status is JobStatus.QUEUED  # the row as it was read
    assert table.row.status is JobStatus.CANCELLED
    assert [w["status"] for w in table.writes] == [JobStatus.CANCELLED]
    assert table.writes[0]["completed_at"]
    assert seen == [JobStatus.QUEUED]  # `before` ran on the open row


def test_a_lost_race_reads_the_row_again_and_then_cancels_it() -> None:
    table = Table(JobStatus.PROCESSING)
    table.race_once = True

    _, cancelled = cancel_row("j1", table.read, table.update)

    assert cancelled and table.row.status is JobStatus.CANCELLED


def test_cancelling_a_cancelled_job_again_changes_nothing() -> None:
    table = Table(JobStatus.CANCELLED)

    _, cancelled = cancel_row("j1", table.read, table.update)

    assert not cancelled and table.writes == []


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_a_job_that_ended_otherwise_is_409_and_untouched(status: JobStatus) -> None:
    table = Table(status)

    with pytest.raises(Conflict) as refused:
        cancel_row("j1", table.read, table.update)

    assert refused.value.error_code == "JOB_NOT_CANCELLABLE"
    assert table.writes == [] and table.row.status is status
