"""The network's state, read side: the backend catalog with each backend's status and queue,
calibration, topology and metrics, and the `Situation` planning estimates from.

A backend is `online`, `retired` (its supplier no longer offers it) or `offline` (a supplier
whose credentials fail); a change is published as an event (`shared.events`). The queue depth
is this gateway's open jobs per backend (one query of every open job, cached for a few
seconds); the metrics, the last hour's and day's jobs (cached too).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from shared import clock, events
from shared.config import Settings
from shared.errors import NotFound
from shared.jobs.estimates import Estimator
from shared.jobs.repository import JobRepository
from shared.network.calibration import calibration as read_calibration
from shared.network.estimates import Situation, wait_seconds
from shared.network.schemas import (
    BackendInfo,
    BackendList,
    BackendStatus,
    CalibrationInfo,
    GateInfo,
    NetworkStatus,
    QubitInfo,
    QueueInfo,
    Topology,
    TopologyEdge,
    TopologyNode,
)
from shared.pricing.book import cost_model
from shared.suppliers.backends import Backend, all_backends, find, of_job
from shared.suppliers.base import DeviceKind
from shared.suppliers.registry import SupplierRegistry
from shared.suppliers.schemas import connectivity_of

_LOAD_TTL_S = 5.0
_METRICS_TTL_S = 10.0


class NetworkState:
    def __init__(
        self,
        settings: Settings,
        job_repo: JobRepository,
        suppliers: SupplierRegistry,
        estimator: Estimator,
    ) -> None:
        self._settings = settings
        self._job_repo = job_repo
        self._suppliers = suppliers
        self._estimator = estimator
        self._lock = threading.Lock()
        self._load: tuple[float, dict[str, int]] = (-math.inf, {})
        self._metrics: tuple[float, dict[str, Any]] = (-math.inf, {})
        self._last_status: dict[str, str] = {}

    def backends(self) -> BackendList:
        load = self.queue_load()
        return BackendList(backends=[self._info(b, load) for b in all_backends()])

    def backend(self, backend_id: str) -> BackendInfo:
        return self._info(find(backend_id), self.queue_load())

    def calibration(self, backend_id: str) -> CalibrationInfo:
        backend = find(backend_id)
        found = read_calibration(backend.target)
        return CalibrationInfo(
            backend=backend.id,
            source=found.source,
            timestamp=found.timestamp,
            kind=found.kind,
            qubits=[QubitInfo(**vars(q)) for q in found.qubits],
            gates=[GateInfo(**vars(g)) for g in found.gates],
            notes=found.notes,
        )

    def queue(self, backend_id: str) -> QueueInfo:
        backend = find(backend_id)
        depth = self.queue_load().get(backend.id, 0)
        parallelism = self._settings.worker_parallelism
        return QueueInfo(
            backend=backend.id,
            queue_depth=depth,
            estimated_wait_s=wait_seconds(depth, parallelism, self._estimator.mean_seconds()),
            source="this gateway's queued and running jobs on the backend, in waves of "
            f"{parallelism} times the measured mean job time; a supplier's own queue is not read",
        )

    def status(self) -> NetworkStatus:
        """The network's status: `operational` when every backend its supplier still offers
        is online (a retired one is listed `retired` but degrades nothing)."""
        load = self.queue_load()
        listed = []
        capacity = offered = online = 0
        for backend in all_backends():
            state = self._backend_status(backend)
            listed.append(
                BackendStatus(id=backend.id, status=state, queue_depth=load.get(backend.id, 0))
            )
            if state == "online" and backend.kind is not DeviceKind.ANALOG:
                capacity += backend.num_qubits or 0
            if not backend.retired:
                offered += 1
                online += state == "online"
        overall = "operational" if online == offered else "degraded" if online else "down"
        return NetworkStatus(
            overall_status=overall,
            total_capacity=capacity,
            active_jobs=sum(load.values()),
            backends=listed,
        )

    def topology(self) -> Topology:
        nodes: list[TopologyNode] = []
        edges: list[TopologyEdge] = []
        seen: set[str] = set()
        for backend in all_backends():
            supplier_node = f"supplier:{backend.supplier}"
            provider_node = f"provider:{backend.supplier}/{backend.provider}"
            for node_id, kind, name in (
                (supplier_node, "supplier", backend.supplier),
                (provider_node, "provider", backend.provider),
            ):
                if node_id not in seen:
                    seen.add(node_id)
                    nodes.append(TopologyNode(id=node_id, type=kind, name=name, coupling=None))
            if (supplier_node, provider_node) not in {(e.source, e.target) for e in edges}:
                edges.append(TopologyEdge(source=supplier_node, target=provider_node))
            nodes.append(
                TopologyNode(
                    id=backend.id,
                    type="backend",
                    name=backend.name,
                    qubits=backend.num_qubits,
                    coupling=_coupling(backend),
                )
            )
            edges.append(TopologyEdge(source=provider_node, target=backend.id))
        return Topology(nodes=nodes, edges=edges)

    def metrics(self) -> dict[str, Any]:
        """Jobs by status, throughput, p50/p95 queue and execution times per backend, success
        rate and shots, over the last hour and day (cached for a few seconds)."""
        now = time.monotonic()
        with self._lock:
            at, cached = self._metrics
        if now - at < _METRICS_TTL_S:
            return cached
        day_ago = clock.utcnow() - timedelta(days=1)
        rows = list(self._job_repo.created_since(clock.iso(day_ago)))
        hour_ago = clock.iso(clock.utcnow() - timedelta(hours=1))
        result = {
            "generated_at": clock.now_iso(),
            "last_hour": _window([r for r in rows if r.get("created_at", "") >= hour_ago], 3600),
            "last_day": _window(rows, 86400),
        }
        with self._lock:
            self._metrics = (now, result)
        return result

    # -- status, load and the planning situation --------------------------------------------

    def situation(self) -> Situation:
        return Situation(
            modes={s: self._suppliers.mode(s) for s in self._suppliers.ids()},
            online={b.id: self._backend_status(b) == "online" for b in all_backends()},
            queue_depth=self.queue_load(),
            mean_job_s=self._estimator.mean_seconds(),
            parallelism=self._settings.worker_parallelism,
            limits=self._settings.limits,
        )

    def backend_status(self, backend_id: str) -> str:
        """The status of backend `backend_id` (see `_backend_status`)."""
        return self._backend_status(find(backend_id))

    def _backend_status(self, backend: Backend) -> str:
        """online, retired (its supplier no longer offers it) or offline (a supplier whose
        credentials fail); a change is published as an event, with the queue depth last
        counted."""
        status = "online"
        if backend.target is not None:
            if backend.retired:
                status = "retired"
            elif self._suppliers.status(backend.supplier).status != "active":
                status = "offline"
        with self._lock:
            before = self._last_status.get(backend.id)
            self._last_status[backend.id] = status
        if before is not None and before != status:
            depth = self._load[1].get(backend.id, 0)
            events.publish(events.Event("backend", backend.id, status, queue_depth=depth))
        return status

    def queue_load(self, max_age_s: float = _LOAD_TTL_S) -> dict[str, int]:
        """This gateway's open jobs per backend id, counted at most `max_age_s` ago (one
        query of every open job when counted now)."""
        now = time.monotonic()
        with self._lock:
            at, cached = self._load
        if now - at < max_age_s:
            return cached
        counts: Counter[str] = Counter()
        for row in self._job_repo.open_jobs():
            try:
                backend = of_job(row.get("supplier"), str(row.get("backend") or ""))
            except NotFound:
                continue
            counts[backend.id] += 1
        load = dict(counts)
        with self._lock:
            self._load = (now, load)
        return load

    def _info(self, backend: Backend, load: Mapping[str, int]) -> BackendInfo:
        target = backend.target
        mode = "local" if target is None else self._suppliers.mode(backend.supplier).value
        cost = cost_model(target) if target else None
        return BackendInfo(
            id=backend.id,
            supplier=backend.supplier,
            provider=backend.provider,
            target=backend.name,
            kind=backend.kind.value,
            qubits=backend.num_qubits,
            native_gates=list(target.native_gates) if target else [],
            status=self._backend_status(backend),
            status_detail=target.description if backend.retired and target else None,
            successor=backend.successor,
            queue_depth=load.get(backend.id, 0),
            mode=mode,
            price=cost.to_dict() if cost else None,
        )


def _coupling(backend: Backend) -> list[list[int]] | str | None:
    target = backend.target
    if target is None or target.kind is DeviceKind.SIMULATOR:
        return None
    if target.coupling is not None:
        return [list(pair) for pair in target.coupling]
    if target.calibration.startswith("fake_"):
        from shared.suppliers.emulation import target_device

        qiskit_target = target_device(target).target
        return [list(pair) for pair in qiskit_target.build_coupling_map().get_edges()]
    return connectivity_of(target)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)


def _window(rows: Sequence[Mapping[str, Any]], seconds: int) -> dict[str, Any]:
    by_status = Counter(str(r.get("status")) for r in rows)
    finished = by_status["completed"] + by_status["failed"]
    per_backend: dict[str, dict[str, list[float]]] = {}
    shots = 0
    for row in rows:
        try:
            backend = of_job(row.get("supplier"), str(row.get("backend") or "")).id
        except NotFound:
            continue
        times = per_backend.setdefault(backend, {"queue": [], "execution": []})
        if row.get("started_at") and row.get("created_at"):
            waited = clock.parse_iso(row["started_at"]) - clock.parse_iso(row["created_at"])
            times["queue"].append(max(waited.total_seconds() * 1000, 0.0))
        if row.get("status") == "completed":
            shots += int(row.get("shots") or 0)
            if row.get("execution_time_ms") is not None:
                times["execution"].append(float(row["execution_time_ms"]))
    return {
        "jobs_by_status": dict(by_status),
        "jobs": len(rows),
        "throughput_per_minute": round(finished / (seconds / 60), 3),
        "success_rate": round(by_status["completed"] / finished, 4) if finished else None,
        "shots_executed": shots,
        "backends": {
            backend: {
                "jobs": len(times["queue"]),
                "queue_time_ms": {
                    "p50": _percentile(times["queue"], 0.5),
                    "p95": _percentile(times["queue"], 0.95),
                },
                "execution_time_ms": {
                    "p50": _percentile(times["execution"], 0.5),
                    "p95": _percentile(times["execution"], 0.95),
                },
            }
            for backend, times in sorted(per_backend.items())
        },
    }
