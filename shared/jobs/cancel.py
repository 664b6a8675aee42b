"""Cancelling a job's row, the one way for v1 jobs and network jobs alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from shared import clock
from shared.errors import Conflict
from shared.jobs.models import JobStatus
from shared.storage import LOST, Lost, until_written


class HasStatus(Protocol):
    @property
    def status(self) -> JobStatus: ...


Row = TypeVar("Row", bound=HasStatus)


def cancel_row(
    job_id: str,
    read: Callable[[], Row],
    update: Callable[[Row, Mapping[str, Any]], bool],
    before: Callable[[Row], None] = lambda row: None,
) -> tuple[Row, bool]:
    """Mark job `job_id` cancelled (its status and `completed_at`), read by `read()` (which
    raises for a job the caller may not see) and written by `update(row, changes)` when the row
    is unchanged since it was read (False: another writer came first; read again). `before(row)`
    runs first on a row still open (a supplier's task is cancelled there). Returns the row and
    whether this call cancelled it (False: it was cancelled already). Raises `Conflict`
    JOB_NOT_CANCELLABLE for a job that ended otherwise."""

    def attempt(n: int) -> tuple[Row, bool] | Lost:
        row = read()
        if row.status is JobStatus.CANCELLED:
            return row, False
        if row.status.terminal:
            raise Conflict(
                f"Job {job_id} is {row.status.value} and can no longer be cancelled",
                error_code="JOB_NOT_CANCELLABLE",
            )
        before(row)
        if not update(row, {"status": JobStatus.CANCELLED, "completed_at": clock.now_iso()}):
            return LOST
        return row, True

    return until_written(
        attempt,
        busy=lambda: RuntimeError(f"could not cancel job {job_id}: too much contention"),
    )
