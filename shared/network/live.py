"""The network's live view, derived from job events off the job path: a network job's progress
as its runs start and end, and each backend's queue depth as jobs come and go.

`Live` is a `shared.events.Background` subscriber (one thread of its own):

- a network job's run that ended (or its first run starting): it reads the job's runs, then the
  job's row (two storage calls), and publishes a `network_job` event, status `running`, with
  `runs_finished` of `runs_planned` and the run that ended; nothing when the job has ended
  meanwhile (its own terminal event tells that);
- a job event naming a backend: it counts the open jobs again (one query,
  `NetworkService.queue_load`), at most once every `REFRESH_SECONDS` (a timer counts the change
  that came too soon), and publishes a `backend` event for each backend whose depth changed.

Its storage calls are no request's and no job's (`calls.detached`). `shared.services` starts it
only where the live stream is configured: nothing else shows these events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared import events
from shared.events import Background, Event
from shared.jobs.models import TERMINAL_STATUSES, JobStatus, run_of
from shared.jobs.repository import JobRepository
from shared.network.repository import RUNNING, NetworkRepository
from shared.storage import calls

REFRESH_SECONDS = 1.0


def _run_ended(event: Event) -> bool:
    return event.status in TERMINAL_STATUSES


def _first_run_started(event: Event) -> bool:
    run = run_of(event.id)
    return event.status == JobStatus.PROCESSING.value and run is not None and run[1:] == (0, 0)


class Live(Background):
    def __init__(
        self,
        repo: NetworkRepository,
        job_repo: JobRepository,
        queue_load: Callable[[float], dict[str, int]],
        backend_status: Callable[[str], str],
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        super().__init__("network-live", self._handle_event, wants=self._wants)
        self._repo = repo
        self._job_repo = job_repo
        self._queue_load = queue_load
        self._backend_status = backend_status
        self._refresh_seconds = refresh_seconds
        self._depth: dict[str, int] = {}  # the depths last published, by backend id
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._counted_at = -float("inf")
        self._timer: threading.Timer | None = None
        self.progress_published = 0

    @staticmethod
    def _wants(event: Event) -> bool:
        return event.kind == "job" and bool(event.backend or event.network_job_id)

    def _handle_event(self, event: Event) -> None:
        if event.network_job_id and (_run_ended(event) or _first_run_started(event)):
            self._progress(event)
        if event.backend:
            self._count_soon()

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # -- a network job's progress ---------------------------------------------------------------

    def _progress(self, run: Event) -> None:
        user_id, job_id = run.user_id, run.network_job_id
        if not user_id or not job_id:
            return
        with calls.detached():
            runs = list(self._job_repo.runs_of(user_id, job_id))
            job = self._repo.get(user_id, job_id)  # read last: the nearer to now, the better
        if job is None or job.status.terminal:
            return
        ended = None
        if _run_ended(run):
            ended = events.RunEnded(run.id, run.backend or "", run.status)
        progress = events.Progress(len(job.slots), job.runs_finished(runs), ended)
        events.publish(Event("network_job", job_id, RUNNING, user_id=user_id, progress=progress))
        self.progress_published += 1

    # -- queue depths ---------------------------------------------------------------------------

    def _count_soon(self) -> None:
        """Count now, or once `refresh_seconds` have passed since the last count."""
        with self._lock:
            if self._timer is not None:
                return  # a count is due; it will see this change too
            wait = self._counted_at + self._refresh_seconds - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._count)
                self._timer.daemon = True
                self._timer.start()
                return
        self._count()

    def _count(self) -> None:
        with self._count_lock:
            with self._lock:
                self._timer = None
                self._counted_at = time.monotonic()
            with calls.detached():
                load = self._queue_load(0.0)
            for backend_id in sorted(set(load) | set(self._depth)):
                depth = load.get(backend_id, 0)
                if self._depth.get(backend_id, 0) == depth:
                    continue
                self._depth[backend_id] = depth
                status = self._backend_status(backend_id)
                events.publish(Event("backend", backend_id, status, queue_depth=depth))
