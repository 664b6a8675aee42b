"""Where jobs live: rows in `jobs`, circuits and results in blobs, ids on queue `jobs`."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared import clock, events
from shared.jobs.messages import JobMessage
from shared.jobs.models import Job, JobStatus, network_job_of
from shared.storage import Storage, get_or_none, insert_new, merge, update_row
from shared.storage.clients import (
    CIRCUITS_CONTAINER,
    JOBS_POISON_QUEUE,
    JOBS_QUEUE,
    JOBS_TABLE,
    RESULTS_CONTAINER,
)
from shared.storage.query import literal
from shared.suppliers.backends import public_id

logger = logging.getLogger(__name__)


def blob_stem(user_id: str, name: str, nonce: str | None = None) -> str:
    """`<owner>/<name>-<nonce>`: the stem of a blob name of its own for a job's circuit or
    result (`<stem>.qasm`, `<stem>.json`), so a job that reuses another's id never overwrites
    its blobs. The nonce is random unless given."""
    return f"{user_id}/{name}-{nonce or secrets.token_hex(4)}"


class JobRepository:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    # -- rows -----------------------------------------------------------------------------------

    def insert(self, job: Job) -> bool:
        """Insert a new job row (setting `job.etag`); False when the owner already has a job
        with this id."""
        job.etag = insert_new(self._jobs, job.to_entity())
        if job.etag is not None:
            _published(job)
        return job.etag is not None

    def get(self, user_id: str, job_id: str) -> Job | None:
        row = get_or_none(self._jobs, user_id, job_id)
        return Job.from_entity(row) if row is not None else None

    def update(self, job: Job, changes: Mapping[str, Any]) -> bool:
        """Apply `changes` if the row is still at `job.etag`; False when someone else wrote first.

        On success `job` holds the changes and its new etag.
        """
        if not update_row(self._jobs, job, changes):
            return False
        if "status" in changes:
            _published(job)
        return True

    def update_unchecked(self, user_id: str, job_id: str, changes: Mapping[str, Any]) -> None:
        """Merge `changes` whatever the row's state (only for fields no transition reads)."""
        merge(self._jobs, {"PartitionKey": user_id, "RowKey": job_id, **_stored(changes)})

    def count(self, user_id: str, created_since: str | None = None) -> int:
        """How many jobs `user_id` has (created at or after `created_since`, when given)."""
        query = f"PartitionKey eq {literal(user_id)}"
        if created_since:
            query += f" and created_at ge {literal(created_since)}"
        return sum(1 for _ in self._jobs.query_entities(query, select=["RowKey"]))

    def count_today(self, user_id: str) -> int:
        """How many jobs `user_id` created since midnight UTC."""
        midnight = clock.utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        return self.count(user_id, created_since=clock.iso(midnight))

    def runs_of(self, user_id: str, job_id: str) -> Iterator[Job]:
        """The runs of network job `job_id` (rows `<job id>-<slot>-<attempt>`)."""
        query = (
            f"PartitionKey eq {literal(user_id)} and RowKey ge {literal(job_id + '-')}"
            f" and RowKey lt {literal(job_id + '.')}"  # '.' sorts right after '-'
        )
        for row in self._jobs.query_entities(query):
            yield Job.from_entity(row)

    def summaries(self, user_id: str, created_at_most: str | None = None) -> Iterator[Job]:
        """`user_id`'s jobs (those created at or before `created_at_most`, when given), in
        storage order, with only the fields a listing shows (never the circuit or the result):
        one storage call per 1000 rows."""
        query = f"PartitionKey eq {literal(user_id)}"
        if created_at_most:
            query += f" and created_at le {literal(created_at_most)}"
        for row in self._jobs.query_entities(query, select=SUMMARY_FIELDS):
            yield Job.from_entity(row)

    def find(self, status: JobStatus, **filters: Any) -> Iterator[Job]:
        """Jobs of every owner in `status`; `filters`: `created_at__lt="..."`, `enqueued=False`."""
        parts = [f"status eq {literal(status.value)}"]
        for key, value in filters.items():
            name, _, op = key.partition("__")
            text = literal(value) if isinstance(value, str) else str(value).lower()
            parts.append(f"{name} {op or 'eq'} {text}")
        for row in self._jobs.query_entities(" and ".join(parts)):
            yield Job.from_entity(row)

    def open_jobs(self) -> Iterator[dict[str, Any]]:
        """`supplier` and `backend` of every queued or running job (every owner's)."""
        query = "status eq 'queued' or status eq 'processing'"
        yield from self._jobs.query_entities(query, select=["supplier", "backend"])

    def created_since(self, since: str) -> Iterator[dict[str, Any]]:
        """The figures of every job created at or after `since` (every owner's)."""
        fields = [
            "status",
            "supplier",
            "backend",
            "shots",
            "created_at",
            "started_at",
            "completed_at",
            "execution_time_ms",
        ]
        yield from self._jobs.query_entities(f"created_at ge {literal(since)}", select=fields)

    # -- payloads: in the row when small, else a blob -----------------------------------------

    def keep_circuit(self, job: Job, qasm: str) -> None:
        """Keep the job's circuit (or task request) for the worker: in the row (written with
        it) when small, else in its blob now."""
        if fits_in_row(qasm):
            job.circuit = qasm
        else:
            self.put_circuit(job.circuit_blob, qasm)

    def circuit_of(self, job: Job) -> str | None:
        """The job's circuit (or task request); None when it is gone."""
        if job.circuit:
            return job.circuit
        return self.get_circuit(job.circuit_blob) if job.circuit_blob else None

    def drop_circuit_quietly(self, job: Job) -> None:
        """Remove the circuit blob of a job whose row was never written."""
        if not job.circuit and job.circuit_blob:
            self.delete_circuit_quietly(job.circuit_blob)

    def keep_result(self, job: Job, result: Mapping[str, Any]) -> dict[str, Any]:
        """Keep the job's result: the row's changes that hold it when small (to write with
        the completion), else it goes to its blob now and the changes are empty."""
        text = _json(result)
        if fits_in_row(text):
            return {"result": text}
        self._upload_result(job.result_blob, text)
        return {}

    def result_of(self, job: Job) -> dict[str, Any] | None:
        """The job's stored result (None when there is none)."""
        if job.result:
            loaded: dict[str, Any] = json.loads(job.result)
            return loaded
        return self.get_result(job.result_blob) if job.result_blob else None

    def drop_result_quietly(self, job: Job) -> None:
        """Remove the result blob of a job whose row was never written."""
        if not job.result and job.result_blob:
            self.delete_result_quietly(job.result_blob)

    # -- blobs ----------------------------------------------------------------------------------

    def put_circuit(self, blob_name: str, qasm: str) -> None:
        self._circuits.get_blob_client(blob_name).upload_blob(qasm.encode("utf-8"), overwrite=True)

    def get_circuit(self, blob_name: str) -> str | None:
        return _download(self._circuits, blob_name)

    def delete_circuit_quietly(self, blob_name: str) -> None:
        """Remove a circuit no job refers to; an outage leaves an orphan blob, nothing worse."""
        try:
            self._circuits.delete_blob(blob_name)
        except Exception as exc:
            logger.warning("could not delete circuit %s: %s", blob_name, type(exc).__name__)

    def put_result(self, blob_name: str, result: Mapping[str, Any]) -> None:
        self._upload_result(blob_name, _json(result))

    def _upload_result(self, blob_name: str, text: str) -> None:
        self._results.get_blob_client(blob_name).upload_blob(text.encode("utf-8"), overwrite=True)

    def get_result(self, blob_name: str) -> dict[str, Any] | None:
        text = _download(self._results, blob_name)
        return json.loads(text) if text is not None else None

    def delete_result_quietly(self, blob_name: str) -> None:
        """Remove a result no job refers to (a duplicate job id's)."""
        try:
            self._results.delete_blob(blob_name)
        except Exception as exc:
            logger.warning("could not delete result %s: %s", blob_name, type(exc).__name__)

    # -- queue ----------------------------------------------------------------------------------

    def enqueue(self, message: JobMessage, delay_seconds: int = 0) -> None:
        """Send `message`; with `delay_seconds` it stays invisible that long."""
        self._storage.queue(JOBS_QUEUE).send_message(
            message.encode(), visibility_timeout=delay_seconds or None
        )

    def to_poison(self, body: str) -> None:
        self._storage.queue(JOBS_POISON_QUEUE).send_message(body)

    def queue_depth(self) -> int:
        props = self._storage.queue(JOBS_QUEUE).get_queue_properties()
        return int(props.approximate_message_count or 0)

    @property
    def _jobs(self) -> Any:
        return self._storage.table(JOBS_TABLE)

    @property
    def _circuits(self) -> Any:
        return self._storage.container(CIRCUITS_CONTAINER)

    @property
    def _results(self) -> Any:
        return self._storage.container(RESULTS_CONTAINER)


# What a listing reads of a job row (`summaries`)
SUMMARY_FIELDS = [
    "PartitionKey",
    "RowKey",
    "status",
    "kind",
    "supplier",
    "backend",
    "shots",
    "num_qubits",
    "created_at",
    "completed_at",
]

# A string property holds 32K UTF-16 units (64 KiB); keep well below, and below an entity's
# 1 MiB with the circuit and the result together.
ROW_TEXT_MAX = 30_000


def fits_in_row(text: str) -> bool:
    return len(text) <= ROW_TEXT_MAX and len(text.encode("utf-16-le")) <= 2 * ROW_TEXT_MAX


def _json(result: Mapping[str, Any]) -> str:
    return json.dumps(result, separators=(",", ":"))


def _published(job: Job) -> None:
    events.publish(
        events.Event(
            "job",
            job.job_id,
            job.status.value,
            user_id=job.user_id,
            backend=public_id(job.supplier, job.backend),
            network_job_id=network_job_of(job.job_id),
        )
    )


def _stored(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, JobStatus) else v) for k, v in changes.items()}


def _download(container: Any, name: str) -> str | None:
    try:
        return str(container.download_blob(name).readall().decode("utf-8"))
    except ResourceNotFoundError:
        return None
