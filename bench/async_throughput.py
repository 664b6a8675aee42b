"""Queued jobs per second through the gateway, beside the raw Azurite queue loop.

Measured in the same run, on the same Azurite, twice: with each of the CLIENTS clients its own
enterprise user (the aim), then with all of them one user (which shows whether that user's
shared rows, its rate counter, quota and ledger, are contended):
- gateway: JOBS Bell jobs (100 shots) submitted with `POST /api/v1/execute` by CLIENTS threads,
  each with its own keep-alive connection; after submitting, each thread polls its own jobs
  (`GET /api/v1/status/{id}`, oldest first, a short sleep while the oldest is not done). Jobs
  per second = JOBS / (first submit -> the last job seen terminal). Every job is accounted for
  (completed / failed / cancelled / not terminal / missing); the script exits 1 unless all of
  them completed (with counts adding up to the shots) within TIMEOUT s. Submit latency p50/p99
  is printed too, and the rate by the jobs' own `completed_at` stamps as a check on polling.
- raw loop: one client doing send_message + receive_message + delete_message per message with
  `azure.storage.queue.QueueClient`, RAW_MESSAGES messages: the storage floor each job sits on.
  It runs before the gateway starts and again after it stopped; the ratio uses the mean.
The aim from the issue (gateway at least half the raw loop's rate) is printed with whether this
run met it; it does not fail the script.
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/async_throughput.py`.
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from _common import BELL, call, create_user, gateway_host, pct
from funchost.testing import Azurite

ADMIN_KEY = "bench-admin-key-async-throughput"
JOBS = 300
CLIENTS = 16
SHOTS = 100
TIMEOUT = 300.0
POLL_SLEEP = 0.1
WARMUP_JOBS = 8
RAW_MESSAGES = 500
RAW_WARMUP = 50
AIM_RATIO = 0.5
TERMINAL = ("completed", "failed", "cancelled")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Job:
    index: int
    job_id: str | None = None
    submit_error: str | None = None
    submitted_at: float = 0.0  # perf_counter
    submit_latency: float = 0.0
    status: str = "missing"
    seen_terminal_at: float | None = None  # perf_counter
    completed_at: float | None = None  # epoch seconds, from the job
    counts_ok: bool = False
    rate_limited: int = 0  # 429s before the submit was accepted


@dataclass
class Run:
    port: int
    api_keys: list[str]  # client i submits as api_keys[i % len(api_keys)]
    jobs: list[Job] = field(default_factory=lambda: [Job(i) for i in range(JOBS)])
    deadline: float = 0.0
    start_epoch: float = 0.0

    def client(self, mine: list[Job], api_key: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"X-API-Key": api_key}
        try:
            for job in mine:
                job.submitted_at = time.perf_counter()
                try:
                    status, body = call(
                        conn, "POST", "/api/v1/execute", {"qasm": BELL, "shots": SHOTS}, headers
                    )
                    while status == 429 and time.perf_counter() < self.deadline:
                        job.rate_limited += 1  # one user's 1000 a minute, polls included
                        time.sleep(0.5)
                        status, body = call(
                            conn, "POST", "/api/v1/execute", {"qasm": BELL, "shots": SHOTS},
                            headers,
                        )
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    job.submit_error = repr(exc)
                    continue
                job.submit_latency = time.perf_counter() - job.submitted_at
                if status == 202 and body.get("job_id"):
                    job.job_id = str(body["job_id"])
                    job.status = str(body.get("status", "queued"))
                else:
                    job.submit_error = f"{status}: {body}"
            pending = [j for j in mine if j.job_id is not None]
            while pending and time.perf_counter() < self.deadline:
                job = pending[0]
                try:
                    status, body = call(
                        conn, "GET", f"/api/v1/status/{job.job_id}", None, headers
                    )
                except (OSError, http.client.HTTPException):
                    conn.close()  # the next request reconnects
                    time.sleep(POLL_SLEEP)
                    continue
                if status == 404:
                    job.status = "missing"
                    pending.pop(0)
                    continue
                if status != 200:
                    time.sleep(POLL_SLEEP)
                    continue
                job.status = str(body["status"])
                if job.status in TERMINAL:
                    job.seen_terminal_at = time.perf_counter()
                    if body.get("completed_at"):
                        job.completed_at = parse_iso(str(body["completed_at"]))
                    counts = (body.get("result") or {}).get("counts") or {}
                    job.counts_ok = sum(counts.values()) == SHOTS
                    pending.pop(0)
                else:
                    time.sleep(POLL_SLEEP)
        finally:
            conn.close()

    def go(self) -> float:
        """Submit and poll every job; returns the epoch time of the first submit."""
        start_epoch = time.time()
        self.deadline = time.perf_counter() + TIMEOUT
        threads = [
            threading.Thread(
                target=self.client,
                args=(self.jobs[i::CLIENTS], self.api_keys[i % len(self.api_keys)]),
            )
            for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return start_epoch


def warm_up(port: int, api_key: str) -> None:
    """A few jobs end to end, so the worker's imports and the tables exist before timing."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"X-API-Key": api_key}
    try:
        ids = []
        for _ in range(WARMUP_JOBS):
            status, body = call(
                conn, "POST", "/api/v1/execute", {"qasm": BELL, "shots": SHOTS}, headers
            )
            if status != 202:
                raise RuntimeError(f"warm-up POST /api/v1/execute answered {status}: {body}")
            ids.append(body["job_id"])
        deadline = time.monotonic() + 120
        for job_id in ids:
            while True:
                status, body = call(conn, "GET", f"/api/v1/status/{job_id}", None, headers)
                if status == 200 and body["status"] == "completed":
                    break
                if status != 200 or body["status"] in TERMINAL or time.monotonic() > deadline:
                    raise RuntimeError(f"warm-up job {job_id}: {status} {body}")
                time.sleep(0.05)
    finally:
        conn.close()


def raw_loop(conn_str: str, count: int) -> float:
    """Messages per second of send + receive + delete, one message at a time, one client."""
    client = QueueClient.from_connection_string(conn_str, "bench-raw-loop")
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    start = time.perf_counter()
    for i in range(count):
        client.send_message(f"message {i}")
        message = client.receive_message()
        if message is None:
            raise RuntimeError("the message just sent was not received")
        client.delete_message(message)
    return count / (time.perf_counter() - start)


def scenario(host_port: int, api_keys: list[str]) -> Run:
    for key in api_keys:
        warm_up(host_port, key)
    run = Run(host_port, api_keys)
    run.start_epoch = run.go()
    return run


def report(title: str, run: Run, raw_rate: float) -> bool:
    """Print one scenario's figures; True when every job completed with the right counts."""
    jobs = run.jobs
    first_submit = min(j.submitted_at for j in jobs)
    seen = [j.seen_terminal_at for j in jobs if j.seen_terminal_at is not None]
    tally = Counter(j.status if j.status in TERMINAL or j.status == "missing" else "not terminal"
                    for j in jobs)
    bad_counts = sum(1 for j in jobs if j.status == "completed" and not j.counts_ok)
    submit_errors = [j.submit_error for j in jobs if j.submit_error]
    latencies = [j.submit_latency for j in jobs if j.job_id is not None]

    print(f"== {title}")
    print(
        f"jobs: {JOBS} submitted by {CLIENTS} clients -> completed {tally['completed']}, "
        f"failed {tally['failed']}, cancelled {tally['cancelled']}, "
        f"not terminal after {TIMEOUT:g} s {tally['not terminal']}, missing {tally['missing']} "
        f"(of which submit errors {len(submit_errors)}); completed with wrong counts {bad_counts}"
    )
    limited = sum(j.rate_limited for j in jobs)
    if limited:
        print(f"submits answered 429 and retried after 0.5 s: {limited}")
    if latencies:
        print(f"submit latency (POST /api/v1/execute): p50 {pct(latencies, 0.5):.1f} ms, "
              f"p99 {pct(latencies, 0.99):.1f} ms")
    ok = tally["completed"] == JOBS and bad_counts == 0
    if seen:
        elapsed = max(seen) - first_submit
        rate = JOBS / elapsed if ok else tally["completed"] / elapsed
        stamps = [j.completed_at for j in jobs if j.completed_at is not None]
        stamp_note = ""
        if stamps:
            stamp_note = (f"; by the jobs' completed_at stamps "
                          f"{len(stamps) / (max(stamps) - run.start_epoch):.1f} jobs/s")
        print(f"gateway: {rate:.1f} jobs/s (first submit -> last seen terminal "
              f"{elapsed:.2f} s{stamp_note})")
        ratio = rate / raw_rate
        met = "met" if ratio >= AIM_RATIO else "NOT met"
        print(f"gateway/raw {ratio:.2f}; aim (issue): at least {AIM_RATIO:g} -> {met}")
    for error in submit_errors[:5]:
        print(f"  submit error: {error}")
    if not ok:
        print(f"FAILED: {JOBS - tally['completed'] + bad_counts} job(s) did not complete "
              "correctly", file=sys.stderr)
    return ok


def main() -> int:
    with Azurite() as azurite:
        conn_str = azurite.connection_string
        raw_loop(conn_str, RAW_WARMUP)
        raw_before = raw_loop(conn_str, RAW_MESSAGES)

        with gateway_host(azurite, ADMIN_KEY) as host:
            with closing(http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)) as conn:
                keys = [
                    create_user(conn, f"bench-async-{i}@example.com", ADMIN_KEY)
                    for i in range(CLIENTS + 1)
                ]
            per_user = scenario(host.port, keys[:CLIENTS])
            one_user = scenario(host.port, keys[CLIENTS:])
        raw_after = raw_loop(conn_str, RAW_MESSAGES)
    raw_rate = (raw_before + raw_after) / 2
    print(f"raw Azurite loop (send + receive + delete, 1 client, {RAW_MESSAGES} messages): "
          f"{raw_rate:.1f} msg/s (mean of {raw_before:.1f} before the gateway ran and "
          f"{raw_after:.1f} after)")
    ok = report(f"{CLIENTS} clients, each its own enterprise user (the aim)", per_user, raw_rate)
    ok = report(f"{CLIENTS} clients, one enterprise user (contention)", one_user, raw_rate) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
