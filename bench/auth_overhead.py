"""What authentication and the rate limit add to a request, and what a job submit costs.

Under funchost on Azurite, CLIENTS threads, each with its own keep-alive connection and its own
enterprise user (1000 requests a minute per key; every client stays far below it), measured in
the same run with the kinds interleaved (each round sends one request of every kind, the order
rotated per round and per client, so no kind gets a quieter machine):

Phase 1, ROUNDS rounds per client after WARMUP untimed ones:
- `GET /health`: public; the request pipeline (request id, body cap) and a constant JSON
  answer. It touches no storage.
- `GET /api/v1/license/status` with the client's own key: the same pipeline plus
  authentication (SHA-256 of the key; the key's partition is read once per 5 s per instance)
  and the rate limit (an ETag-guarded write of the counter leases 50 requests, handed out from
  memory); the answer is the license status this process verified once at start (a clock
  comparison per call).
- the same with one key shared by all clients (a second enterprise user): its lease is shared
  by the clients in memory, so it costs what an own key costs.

Phase 2, EXEC_ROUNDS rounds per client: `POST /api/v1/execute` (Bell, 10 shots) beside the two
requests above. A submit is authentication + rate limit, then parsing the circuit and the
tier's limits (enterprise users move no quota counter), the job row holding the circuit and
the queue message.
The queue worker runs those jobs in the same process meanwhile (warmed up first: the Aer pool
is started by jobs run to completion before timing), so phase 2 is a busier machine than
phase 1; compare within a phase.

Every status other than the expected one (200; 202 for the submit) is counted and printed, 429s
separately, with the lowest `X-RateLimit-Remaining` seen. Times are printed, never asserted.
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/auth_overhead.py`.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

from _common import BELL, call, create_user, gateway_host, pct
from funchost.testing import Azurite

ADMIN_KEY = "qcos_admin_" + "a" * 40
CLIENTS = 8
WARMUP = 10
ROUNDS = 50  # per client: 400 timed requests of each phase-1 kind
EXEC_WARMUP = 2
EXEC_ROUNDS = 25  # per client: 200 timed requests of each phase-2 kind
SHOTS = 10
WARM_JOBS_TIMEOUT = 120.0

HEALTH = "GET /health"
LICENSE = "GET /api/v1/license/status, own key"
SHARED = "GET /api/v1/license/status, shared key"
EXECUTE = "POST /api/v1/execute (Bell, 10 shots)"


@dataclass(frozen=True)
class Kind:
    label: str
    method: str
    path: str
    expected: int
    key: Callable[[int], str | None]  # the key client i presents (None: none)
    body: dict[str, object] | None = None


@dataclass
class Tally:
    seconds: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: int = 0
    errors: list[str] = field(default_factory=list)
    min_remaining: int | None = None


class Timed:
    """One keep-alive connection; each request's latency, status and rate-limit headroom."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, kind: Kind, key: str | None) -> tuple[float, int, int | None, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["X-API-Key"] = key
        payload = json.dumps(kind.body).encode() if kind.body is not None else None
        started = time.perf_counter()
        self.conn.request(kind.method, kind.path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        remaining = response.getheader("X-RateLimit-Remaining")
        return elapsed, response.status, int(remaining) if remaining else None, data.decode()

    def close(self) -> None:
        self.conn.close()


def run_phase(
    port: int, kinds: list[Kind], warmup: int, rounds: int
) -> tuple[dict[str, Tally], float]:
    """Every client sends `warmup` then `rounds` rounds of `kinds`; the timed rounds start
    together (a barrier) and are tallied per kind. Returns the tallies and the timed wall time."""
    tallies = {kind.label: Tally() for kind in kinds}
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)
    failures: list[BaseException] = []

    def client(index: int) -> None:
        timed = Timed(port)
        try:
            for step in range(warmup + rounds):
                if step == warmup:
                    barrier.wait()
                shift = (step + index) % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    try:
                        elapsed, status, remaining, text = timed.send(kind, kind.key(index))
                    except (OSError, http.client.HTTPException) as exc:
                        timed.close()
                        timed = Timed(port)
                        elapsed, status, remaining, text = 0.0, 0, None, repr(exc)
                    if step < warmup:
                        continue
                    with lock:
                        tally = tallies[kind.label]
                        tally.statuses[status] += 1
                        if status == kind.expected:
                            tally.seconds.append(elapsed)
                        else:
                            tally.unexpected += 1
                            if len(tally.errors) < 3:
                                tally.errors.append(f"{status}: {text[:200]}")
                        if remaining is not None and (
                            tally.min_remaining is None or remaining < tally.min_remaining
                        ):
                            tally.min_remaining = remaining
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            barrier.abort()
        finally:
            timed.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"a client failed: {failures[0]!r}") from failures[0]
    return tallies, wall


def warm_jobs(port: int, keys: list[str]) -> None:
    """One job per client through the queue to completion, so the worker's imports and the
    Aer pool exist before phase 2 is timed."""
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=60)) as conn:
        jobs = []
        for key in keys:
            status, body = call(
                conn, "POST", "/api/v1/execute", {"qasm": BELL, "shots": SHOTS}, {"X-API-Key": key}
            )
            if status != 202:
                raise RuntimeError(f"warm-up POST /api/v1/execute answered {status}: {body}")
            jobs.append((key, str(body["job_id"])))
        deadline = time.monotonic() + WARM_JOBS_TIMEOUT
        for key, job_id in jobs:
            while True:
                status, body = call(
                    conn, "GET", f"/api/v1/status/{job_id}", None, {"X-API-Key": key}
                )
                if status == 200 and body["status"] == "completed":
                    break
                if status != 200 or body["status"] in ("failed", "cancelled"):
                    raise RuntimeError(f"warm-up job {job_id}: {status} {body}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"warm-up job {job_id} not done in {WARM_JOBS_TIMEOUT} s")
                time.sleep(0.05)


def report(title: str, tallies: dict[str, Tally], wall: float) -> dict[str, float]:
    """Print one phase's table; the p50 (ms) of each kind."""
    total = sum(sum(t.statuses.values()) for t in tallies.values())
    print(f"\n{title}: {total} timed requests in {wall:.1f} s ({total / wall:.0f} requests/s)")
    print(
        f"  {'request':<40} {'n':>5} {'not ok':>6} {'429':>4} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'mean ms':>8}  lowest RateLimit-Remaining"
    )
    p50s: dict[str, float] = {}
    for label, tally in tallies.items():
        n = sum(tally.statuses.values())
        ok = tally.seconds
        p50 = pct(ok, 0.5) if ok else float("nan")
        p95 = pct(ok, 0.95) if ok else float("nan")
        mean = statistics.fmean(ok) * 1000 if ok else float("nan")
        p50s[label] = p50
        remaining = "-" if tally.min_remaining is None else str(tally.min_remaining)
        print(
            f"  {label:<40} {n:>5} {tally.unexpected:>6} {tally.statuses[429]:>4} "
            f"{p50:8.2f} {p95:8.2f} {mean:8.2f}  {remaining}"
        )
        for error in tally.errors:
            print(f"    unexpected answer: {error}")
    return p50s


def compare(p50s: dict[str, float], what: str, base: str, label: str) -> None:
    a, b = p50s[what], p50s[base]
    print(f"  {label}: p50 {a:.2f} - {b:.2f} = {a - b:+.2f} ms, ratio {a / b:.2f}")


def main() -> None:
    with Azurite() as azurite, gateway_host(azurite, ADMIN_KEY) as host:
        with closing(http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)) as conn:
            run_id = uuid.uuid4().hex[:8]
            own = [
                create_user(conn, f"bench-auth-{run_id}-{i}@example.com", ADMIN_KEY)
                for i in range(CLIENTS)
            ]
            shared = create_user(conn, f"bench-auth-{run_id}-shared@example.com", ADMIN_KEY)

        health = Kind(HEALTH, "GET", "/health", 200, lambda i: None)
        license_own = Kind(LICENSE, "GET", "/api/v1/license/status", 200, lambda i: own[i])
        license_shared = Kind(SHARED, "GET", "/api/v1/license/status", 200, lambda i: shared)
        execute = Kind(
            EXECUTE,
            "POST",
            "/api/v1/execute",
            202,
            lambda i: own[i],
            {"qasm": BELL, "shots": SHOTS},
        )

        print(
            f"auth_overhead: {CLIENTS} clients (threads, keep-alive connections), funchost and "
            f"Azurite on this machine ({os.cpu_count()} CPUs); each client has its own "
            "enterprise user (1000 requests/min per key), plus one key all clients share.\n"
            "  GET /health: public; request id and body cap, a constant JSON answer, no storage.\n"
            "  GET /api/v1/license/status: the same + auth (SHA-256 of the key; its partition "
            "read once per 5 s)\n"
            "    + rate limit (a lease of 50 requests per ETag write of the counter) + the "
            "license status verified once at start.\n"
            "  POST /api/v1/execute: auth + rate limit, circuit parse and tier limits (no quota "
            "counter for enterprise),\n"
            "    the job row with the circuit and the queue message (the job then runs in the "
            "background on this host's worker)."
        )

        tallies, wall = run_phase(host.port, [health, license_own, license_shared], WARMUP, ROUNDS)
        p50s = report(
            f"Phase 1, interleaved, {ROUNDS} rounds per client after {WARMUP} warm-up rounds",
            tallies,
            wall,
        )
        print("  What auth + rate limit add to a request:")
        compare(p50s, LICENSE, HEALTH, "own key    - /health")
        compare(p50s, SHARED, HEALTH, "shared key - /health")
        compare(p50s, SHARED, LICENSE, "shared key - own key (counter contention)")

        warm_jobs(host.port, own)
        tallies2, wall2 = run_phase(
            host.port, [health, license_own, execute], EXEC_WARMUP, EXEC_ROUNDS
        )
        p50s2 = report(
            f"Phase 2, interleaved, {EXEC_ROUNDS} rounds per client after {EXEC_WARMUP} "
            "warm-up rounds, the worker running the submitted jobs meanwhile",
            tallies2,
            wall2,
        )
        compare(p50s2, LICENSE, HEALTH, "auth + rate limit (own key) - /health")
        compare(p50s2, EXECUTE, LICENSE, "submit - auth + rate limit (the submit's own work)")
        compare(p50s2, EXECUTE, HEALTH, "submit - /health")

        not_ok = sum(t.unexpected for t in (*tallies.values(), *tallies2.values()))
        limited = sum(t.statuses[429] for t in (*tallies.values(), *tallies2.values()))
        print(f"\nunexpected statuses in timed requests: {not_ok} (of which 429: {limited})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
