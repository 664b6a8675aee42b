"""The live stream (issue 20): latency to the client, the subscribers the local stand-in holds,
and what one subscriber costs the function app per update.

One run, on one Azurite, one Web PubSub stand-in (`pubsubhost`) and the app under funchost:

1. Latency. One enterprise user and one plain WebSocket through funchost's proxy
   (`ws://.../api/v2/network/stream`, subscribed to both topics). After WARMUP_JOBS jobs,
   JOBS Bell jobs (SHOTS shots) go in with `POST /api/v1/execute` from CLIENTS clients at a
   steady JOB_RATE a second in all; this process takes `time.time()` as each job's `completed`
   update is read. Then each job's `completed_at` is read with `GET /api/v1/status/{id}`.
   Printed in ms, p50/p99/max: receipt - completed_at (end to end), receipt - the update's
   `timestamp` (the publisher's thread, the stand-in, the proxy and this client), and
   timestamp - completed_at (the row's write between the two stamps). Every job must have its
   `completed` update: the run exits 1 when one is missing (and lists it).
2. Subscribers. For each K in LADDER, a child process opens K connections of one user directly
   to the stand-in with the URL of `POST /api/v2/network/stream/negotiate` (already in the
   user's groups; funchost's proxy would add a socket per client), then RUNG_JOBS jobs go in at
   RUNG_RATE a second, and every connection should get each job's queued, processing and
   completed update. Per K: connections held, updates delivered / expected, latency from the
   update's timestamp to receipt (p50/p99; the K clients share one process on this machine, so
   their own event loop is in the figure), the stand-in's RSS before, holding K and at its peak,
   and the CPU seconds the stand-in and the clients' process used from the first submit to the
   last delivery (either near a full core: that one is the limit; both far below the window:
   they waited for cores that other work held).
   The stand-in's max_connections is raised above the ladder's top where its default is lower.
   The ladder stops at the first K with a refused connection, a connection the stand-in
   closed, or a lost update.
3. Cost per update on the function app, in this process: the app's `Services` built on the
   same Azurite with the stream configured, so the stream's publisher, the webhooks dispatcher
   and the network live view are subscribed to `shared.events`. EVENTS job events are published
   at PUBLISH_RATE a second, alternating by job between a user with 1 connection and one with
   COST_K (a child process holds them; COST_K is capped by the ladder's last good K), and:
   (a) the time `shared.events.publish` takes on the publishing thread (wall, and the thread's
       own CPU by `time.thread_time`), beside the same with no subscriber (before the services
       are built) and one storage call on this Azurite;
   (b) the storage calls on the publishing thread (`shared.storage.calls.counted()`), and those
       the background threads made meanwhile, by thread;
   (c) each `send_to_group` in the stream's background thread (wall for the group of 1 and of
       COST_K, and that thread's CPU), and how long an event waited in its queue;
   (d) the network live view's storage calls, as its code states them (not measured here).
Nothing about speed is asserted. For a short run, set STREAM_BENCH_JOBS, STREAM_BENCH_LADDER
(e.g. 10,100), STREAM_BENCH_RUNG_JOBS, STREAM_BENCH_EVENTS or STREAM_BENCH_COST_K.
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/stream_latency.py`.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import platform
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from _common import BELL, ROOT, call, gateway_env, pct
from funchost.testing import Azurite, FuncHost, free_port
from pubsubhost.settings import Limits
from pubsubhost.testing import PubSubHost
from shared import events, signing
from shared.config import Settings
from shared.events import Background, Event
from shared.jobs.repository import JobRepository
from shared.network import live
from shared.services import Services
from shared.storage import calls
from shared.stream import messages
from shared.webhooks import dispatcher


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def env_ints(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    text = os.environ.get(name)
    return tuple(int(v) for v in text.split(",") if v.strip()) if text else default


ADMIN_KEY = "bench-admin-key-stream-latency"
TOPICS = ["job_updates", "backend_status"]
STATUSES = ("queued", "processing", "completed")  # a Bell job's updates, in order
SHOTS = 10
# 1. latency
JOBS = env_int("STREAM_BENCH_JOBS", 200)
CLIENTS = 4
JOB_RATE = 8.0  # jobs a second, all clients together
WARMUP_JOBS = 4
COMPLETE_TIMEOUT = 120.0  # after the last submit
# 2. subscribers
LADDER = env_ints("STREAM_BENCH_LADDER", (10, 100, 500, 1000, 2000))
RUNG_JOBS = env_int("STREAM_BENCH_RUNG_JOBS", 20)
RUNG_RATE = 4.0
RUNG_TIMEOUT = 60.0  # for every connection to have every update, after the last submit
CONNECT_CONCURRENCY = 64  # handshakes in flight (each posts `connect` to the app)
CONNECT_TIMEOUT = 180.0  # for all K
CONNECTION_MARGIN = 16  # over the ladder's top, for max_connections
SETTLE = 1.0  # between the last connection and the first job
RSS_EVERY = 0.2
# 3. cost per update
EVENTS = env_int("STREAM_BENCH_EVENTS", 300)
PUBLISH_RATE = 10.0  # an event to the group of COST_K is COST_K frames: not to saturate
COST_K = env_int("STREAM_BENCH_COST_K", 1000)
STORAGE_CALLS = 200


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def figures(values: list[float]) -> str:
    """p50 / p99 / max of `values` (seconds) in ms."""
    if not values:
        return "      -        -        -"
    return f"{pct(values, 0.5):7.1f}  {pct(values, 0.99):7.1f}  {max(values) * 1000:7.1f}"


def rss_mib(pid: int) -> float | None:
    """The resident set of process `pid` in MiB (psutil where installed, else /proc)."""
    try:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        pass
    except Exception:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far (psutil where installed, else /proc)."""
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except ImportError:
        pass
    except Exception:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def used(before: float | None, after: float | None) -> str:
    return f"{after - before:.1f} s" if before is not None and after is not None else "n/a"


def mib(value: float | None) -> str:
    return f"{value:.0f} MiB" if value is not None else "n/a"


@contextmanager
def peak_rss(pid: int) -> Iterator[list[float]]:
    """Samples the RSS of `pid` every RSS_EVERY s; the list holds the samples."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            value = rss_mib(pid)
            if value is not None:
                samples.append(value)
            stop.wait(RSS_EVERY)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


# -- HTTP, as a client of the app -----------------------------------------------------------


def new_user(conn: http.client.HTTPConnection, email: str) -> tuple[str, str]:
    """A new enterprise user: its id and its API key."""
    status, body = call(
        conn, "POST", "/admin/users", {"email": email, "tier": "enterprise"},
        {"X-API-Key": ADMIN_KEY},
    )
    if status != 201:
        raise RuntimeError(f"POST /admin/users answered {status}: {body}")
    return str(body["user_id"]), str(body["api_key"])


def negotiate(conn: http.client.HTTPConnection, key: str) -> str:
    status, body = call(conn, "POST", "/api/v2/network/stream/negotiate", None, {"X-API-Key": key})
    if status != 200 or not isinstance(body, dict) or "url" not in body:
        raise RuntimeError(f"negotiate answered {status}: {body}")
    return str(body["url"])


def submit(conn: http.client.HTTPConnection, key: str) -> str:
    """A Bell job's id (a 429 is retried after 0.5 s)."""
    for _ in range(60):
        status, body = call(
            conn, "POST", "/api/v1/execute", {"qasm": BELL, "shots": SHOTS}, {"X-API-Key": key}
        )
        if status == 202:
            return str(body["job_id"])
        if status != 429:
            break
        time.sleep(0.5)
    raise RuntimeError(f"POST /api/v1/execute answered {status}: {body}")


def submit_paced(port: int, key: str, count: int, rate: float) -> list[str]:
    """`count` jobs from one client, job i due at i / `rate` s from the start."""
    ids = []
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=60)) as conn:
        start = time.monotonic()
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ids.append(submit(conn, key))
    return ids


# -- 1. latency through the proxy -------------------------------------------------------------


@dataclass
class Latency:
    job_ids: list[str] = field(default_factory=list)
    received: dict[str, float] = field(default_factory=dict)  # job id -> time.time()
    stamped: dict[str, float] = field(default_factory=dict)  # job id -> the update's timestamp
    completed_at: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)  # from GET /api/v1/status
    frames: Counter[str] = field(default_factory=Counter)  # job_update statuses, other types
    submit_seconds: float = 0.0
    backend: str | None = None  # as the updates name it


async def until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def latency_run(host: FuncHost, key: str) -> Latency:
    run = Latency()
    headers = {"X-API-Key": key}
    http_session = aiohttp.ClientSession(
        host.url, connector=aiohttp.TCPConnector(limit=CLIENTS), headers=headers
    )
    async with http_session, aiohttp.ClientSession() as ws_session:
        ws = await ws_session.ws_connect(f"ws://127.0.0.1:{host.port}/api/v2/network/stream")
        await ws.send_str(json.dumps({"api_key": key, "subscribe": TOPICS}))
        first = await ws.receive(timeout=30)
        if first.type != aiohttp.WSMsgType.TEXT or json.loads(first.data)["type"] != "subscribed":
            raise RuntimeError(f"the stream did not acknowledge the subscription: {first}")

        async def read() -> None:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                now = time.time()
                frame = json.loads(message.data)
                if frame.get("type") != "job_update":
                    run.frames[str(frame.get("type"))] += 1
                    continue
                run.frames[frame["status"]] += 1
                if frame["status"] == "completed" and frame["job_id"] not in run.received:
                    run.received[frame["job_id"]] = now
                    run.stamped[frame["job_id"]] = parse_iso(frame["timestamp"])
                    run.backend = run.backend or frame.get("backend")

        async def post() -> str:
            for _ in range(60):
                async with http_session.post(
                    "/api/v1/execute", json={"qasm": BELL, "shots": SHOTS}
                ) as answer:
                    body = await answer.json(content_type=None)
                    if answer.status == 202:
                        return str(body["job_id"])
                    if answer.status != 429:
                        raise RuntimeError(f"POST /api/v1/execute answered {answer.status}: {body}")
                await asyncio.sleep(0.5)
            raise RuntimeError("POST /api/v1/execute kept answering 429")

        reader = asyncio.create_task(read())
        warm = [await post() for _ in range(WARMUP_JOBS)]  # the worker's imports, the tables
        if not await until(lambda: all(j in run.received for j in warm), 120):
            raise RuntimeError("the warm-up jobs' completed updates did not arrive")
        run.frames.clear()

        slots: list[str] = [""] * JOBS
        start = time.monotonic()

        async def client(first_index: int) -> None:
            for i in range(first_index, JOBS, CLIENTS):
                delay = start + i / JOB_RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                slots[i] = await post()

        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        run.submit_seconds = time.monotonic() - start
        run.job_ids = slots
        await until(lambda: all(j in run.received for j in slots), COMPLETE_TIMEOUT)
        await ws.close()
        await reader

        limit = asyncio.Semaphore(CLIENTS)

        async def stamp(job_id: str) -> None:
            async with limit:
                for _ in range(60):
                    async with http_session.get(f"/api/v1/status/{job_id}") as answer:
                        body = await answer.json(content_type=None)
                    if answer.status != 429:
                        break
                    await asyncio.sleep(0.5)
            if answer.status != 200:
                run.statuses[job_id] = f"HTTP {answer.status}"
                return
            run.statuses[job_id] = str(body["status"])
            if body.get("completed_at"):
                run.completed_at[job_id] = parse_iso(str(body["completed_at"]))

        await asyncio.gather(*(stamp(j) for j in slots))
    return run


def report_latency(run: Latency) -> bool:
    """Print part 1; True when every job's completed update arrived."""
    ids = run.job_ids
    missing = [j for j in ids if j not in run.received]
    to_client = [run.received[j] - run.completed_at[j] for j in ids
                 if j in run.received and j in run.completed_at]
    from_stamp = [run.received[j] - run.stamped[j] for j in ids if j in run.received]
    write = [run.stamped[j] - run.completed_at[j] for j in ids
             if j in run.stamped and j in run.completed_at]
    other = {k: v for k, v in run.frames.items() if k not in STATUSES}
    print(f"== 1. latency: {JOBS} Bell jobs ({SHOTS} shots) from {CLIENTS} clients at "
          f"{JOB_RATE:g} jobs/s (submitted in {run.submit_seconds:.1f} s: "
          f"{JOBS / run.submit_seconds:.1f}/s), one plain WebSocket through funchost's proxy")
    print(f"completed updates received: {len(ids) - len(missing)} of {len(ids)}; job_update "
          f"frames: " + ", ".join(f"{s} {run.frames[s]}" for s in STATUSES)
          + (f"; other frames: {dict(other)}" if other else ""))
    print(f"{'ms':<44}{'p50':>7}  {'p99':>7}  {'max':>7}  n")
    print(f"{'completed_at -> receipt (end to end)':<44}{figures(to_client)}  {len(to_client)}")
    print(f"{'update timestamp -> receipt (push)':<44}{figures(from_stamp)}  {len(from_stamp)}")
    print(f"{'completed_at -> update timestamp (row write)':<44}{figures(write)}  {len(write)}")
    print("stamps: completed_at from GET /api/v1/status/{id} (ms precision, taken by the worker "
          "before it writes the row); timestamp: the update's own (ms, taken as the event is "
          "published, after the write); receipt: time.time() here as the frame is read; one "
          "clock (same machine). Each ms stamp is truncated, so a figure may read up to 1 ms high.")
    for job_id in missing:
        print(f"  MISSING completed update: job {job_id} (status now "
              f"{run.statuses.get(job_id, 'unknown')})")
    if missing:
        print(f"FAILED: {len(missing)} job(s) had no completed update", file=sys.stderr)
    return not missing


# -- connections held in a child process (2. and 3.) ---------------------------------------


@dataclass(eq=False)
class Held:
    ws: aiohttp.ClientWebSocketResponse
    target: int  # which of the holder's URLs
    seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (job, status) -> s
    closing: bool = False
    lost: int | None = None  # the close code, when the stand-in closed it


def holder(targets: list[tuple[str, int]], commands: Any, out: Any) -> None:
    """A child process's work: hold `count` connections to each `url` of `targets`, record
    each job update's latency from its timestamp to receipt, and answer the commands:
    ("expect", [keys per target], timeout) waits until every connection has its target's
    (job id, status) keys, then reports; ("stop",) reports nothing."""
    asyncio.run(_hold(targets, commands, out))


async def _hold(targets: list[tuple[str, int]], commands: Any, out: Any) -> None:
    stamps: dict[str, float] = {}
    held: list[Held] = []
    readers: list[asyncio.Task[None]] = []
    refused: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        handshakes = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def read(h: Held) -> None:
            async for message in h.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                now = time.time()
                frame = json.loads(message.data)
                kind = str(frame.get("type"))
                frames[kind] += 1
                if kind == "job_update":
                    text = frame["timestamp"]
                    at = stamps.get(text)
                    if at is None:
                        at = stamps[text] = parse_iso(text)
                    h.seen.setdefault((frame["job_id"], frame["status"]), now - at)
            if not h.closing:
                h.lost = h.ws.close_code if h.ws.close_code is not None else -1

        async def connect(url: str, target: int) -> None:
            async with handshakes:
                try:
                    ws = await session.ws_connect(url, autoping=True)
                except aiohttp.WSServerHandshakeError as error:
                    refused[f"HTTP {error.status}"] += 1
                    return
                except (aiohttp.ClientError, OSError, TimeoutError) as error:
                    refused[type(error).__name__] += 1
                    return
            h = Held(ws, target)
            held.append(h)
            readers.append(asyncio.create_task(read(h)))

        start = time.perf_counter()
        await asyncio.gather(
            *(connect(url, t) for t, (url, count) in enumerate(targets) for _ in range(count))
        )
        out.put(("ready", len(held), dict(refused), time.perf_counter() - start))

        command = await asyncio.to_thread(commands.get)
        result: dict[str, Any] = {}
        if command[0] == "expect":
            wanted = [set(keys) for keys in command[1]]
            deadline = time.monotonic() + command[2]
            while time.monotonic() < deadline and not all(
                h.lost is not None or wanted[h.target] <= h.seen.keys() for h in held
            ):
                await asyncio.sleep(0.1)
            per_target = []
            for t in range(len(targets)):
                mine = [h for h in held if h.target == t]
                per_target.append({
                    "held": len(mine),
                    "expected": len(wanted[t]) * len(mine),
                    "delivered": sum(len(wanted[t] & h.seen.keys()) for h in mine),
                    "complete": sum(1 for h in mine if wanted[t] <= h.seen.keys()),
                    "latencies": [h.seen[k] for h in mine for k in wanted[t] if k in h.seen],
                })
            result = {
                "targets": per_target,
                "lost": dict(Counter(h.lost for h in held if h.lost is not None)),
                "frames": dict(frames),
            }
        out.put(("done", result))  # before the closes, so that their work is not timed
        for h in held:
            h.closing = True
        await asyncio.gather(*(h.ws.close() for h in held), return_exceptions=True)
        await asyncio.gather(*readers, return_exceptions=True)


class Holder:
    """`holder` in a child process (spawned: it shares nothing with this one's threads)."""

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.commands: Any = ctx.Queue()
        self.out: Any = ctx.Queue()
        self.process = ctx.Process(
            target=holder, args=(targets, self.commands, self.out), daemon=True
        )

    def __enter__(self) -> Holder:
        self.process.start()
        return self

    def ready(self) -> tuple[int, dict[str, int], float]:
        """Connections held, refusals by cause, seconds to connect them all."""
        _, count, refused, seconds = self.out.get(timeout=CONNECT_TIMEOUT)
        return int(count), dict(refused), float(seconds)

    def expect(self, keys: list[list[tuple[str, str]]], timeout: float) -> dict[str, Any]:
        self.commands.put(("expect", keys, timeout))
        _, result = self.out.get(timeout=timeout + 120)
        return dict(result)

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive() and exc[0] is not None:
            self.process.terminate()
        self.process.join(60)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


# -- 2. subscribers ---------------------------------------------------------------------------


@dataclass
class Rung:
    k: int
    held: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    connect_seconds: float = 0.0
    expected: int = 0
    delivered: int = 0
    complete: int = 0
    latencies: list[float] = field(default_factory=list)
    lost: dict[int, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    rss_before: float | None = None
    rss_held: float | None = None
    rss_peak: float | None = None
    window: float = 0.0  # s, from the first job's submit to every update delivered
    cpu_standin: str = "n/a"  # CPU seconds in the window
    cpu_clients: str = "n/a"

    @property
    def ok(self) -> bool:
        return not self.refused and not self.lost and self.delivered == self.expected


def rung(host: FuncHost, wps_pid: int, key: str, k: int) -> Rung:
    result = Rung(k, rss_before=rss_mib(wps_pid))
    with closing(http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)) as conn:
        url = negotiate(conn, key)  # a token is checked at the handshake only: one for all K
    with peak_rss(wps_pid) as samples, Holder([(url, k)]) as child:
        result.held, result.refused, result.connect_seconds = child.ready()
        if result.refused:
            result.rss_held = result.rss_peak = rss_mib(wps_pid)
            child.commands.put(("stop",))
            child.out.get(timeout=120)
            return result
        time.sleep(SETTLE)
        result.rss_held = rss_mib(wps_pid)
        child_pid = child.process.pid
        assert child_pid is not None
        cpu = cpu_seconds(wps_pid), cpu_seconds(child_pid)
        start = time.monotonic()
        ids = submit_paced(host.port, key, RUNG_JOBS, RUNG_RATE)
        answer = child.expect([[(j, s) for j in ids for s in STATUSES]], RUNG_TIMEOUT)
        result.window = time.monotonic() - start
        result.cpu_standin = used(cpu[0], cpu_seconds(wps_pid))
        result.cpu_clients = used(cpu[1], cpu_seconds(child_pid))
    result.rss_peak = max(samples, default=None)
    (target,) = answer["targets"]
    result.expected, result.delivered = target["expected"], target["delivered"]
    result.complete, result.latencies = target["complete"], target["latencies"]
    result.lost, result.frames = answer["lost"], answer["frames"]
    return result


def report_rung(r: Rung) -> None:
    lat = (f"p50 {pct(r.latencies, 0.5):.1f} ms, p99 {pct(r.latencies, 0.99):.1f} ms"
           if r.latencies else "n/a")
    print(f"K={r.k}: held {r.held} (connected in {r.connect_seconds:.1f} s)"
          + (f", REFUSED {sum(r.refused.values())} {r.refused}" if r.refused else "")
          + (f"; updates delivered {r.delivered} of {r.expected} ({r.complete} of {r.held} "
             f"connections got all {3 * RUNG_JOBS}); timestamp -> receipt {lat}"
             if not r.refused else "")
          + (f"; CLOSED by the stand-in (close code: count) {r.lost}" if r.lost else "")
          + (f"; backend_status frames {r.frames.get('backend_status', 0)}" if r.frames else "")
          + f"; stand-in RSS before {mib(r.rss_before)}, holding {mib(r.rss_held)}, "
            f"peak {mib(r.rss_peak)}"
          + (f"; CPU from the first submit to the last delivery ({r.window:.1f} s): stand-in "
             f"{r.cpu_standin}, the K clients {r.cpu_clients}" if r.window else ""))


def ladder(host: FuncHost, wps_pid: int, key: str, limit: int) -> list[Rung]:
    print(f"== 2. subscribers: K connections of one user, negotiated, straight to the stand-in "
          f"(max_connections {limit}; its default {Limits.max_connections}); {RUNG_JOBS} jobs "
          f"at {RUNG_RATE:g}/s while they are held, 3 updates each to every connection; "
          f"a child process holds them, {CONNECT_CONCURRENCY} handshakes at a time")
    rungs = []
    for k in LADDER:
        r = rung(host, wps_pid, key, k)
        rungs.append(r)
        report_rung(r)
        if not r.ok:
            print(f"ladder stopped at K={k}: "
                  + ("connections refused" if r.refused else
                     "connections closed by the stand-in" if r.lost else "updates lost"))
            break
        time.sleep(SETTLE)  # the disconnected events of this rung reach the app
    else:
        print(f"ladder: every K up to {LADDER[-1]} held with every update delivered")
    return rungs


# -- 3. cost per update on the app ------------------------------------------------------------


@dataclass
class Cost:
    k: int
    floor: list[float] = field(default_factory=list)  # publish, no subscriber (s)
    publish: list[float] = field(default_factory=list)  # publish, the app's subscribers (s)
    floor_cpu: list[float] = field(default_factory=list)  # the publishing thread's CPU (s)
    publish_cpu: list[float] = field(default_factory=list)
    subscribers: list[str] = field(default_factory=list)
    job_path_calls: int = -1
    background_calls: Counter[str] = field(default_factory=Counter)
    storage_call: list[float] = field(default_factory=list)
    storage_call_count: int = 0
    sends: dict[str, list[float]] = field(default_factory=dict)  # "1", "K", "backend" -> s
    send_cpu: list[float] = field(default_factory=list)  # the sending thread's CPU per send
    queue_wait: list[float] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    lost: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    failed: int = 0


def event_for(i: int, jobs: list[tuple[str, str]], backend: str | None) -> Event:
    """Event i: job i // 3's status i % 3, of the job's user (jobs: (job id, user id))."""
    job_id, user_id = jobs[(i // 3) % len(jobs)]
    return Event("job", job_id, STATUSES[i % 3], user_id=user_id, backend=backend)


def timed_publish(event: Event) -> tuple[float, float]:
    """Wall and this thread's CPU seconds of publishing `event`."""
    wall, cpu = time.perf_counter(), time.thread_time()
    events.publish(event)
    return time.perf_counter() - wall, time.thread_time() - cpu


def paced(count: int, rate: float) -> Iterator[int]:
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield i


def cost_run(azurite: Azurite, wps: PubSubHost, host: FuncHost, backend: str | None,
             k: int) -> Cost:
    cost = Cost(k)
    # (a) the floor: no subscriber in this process yet
    floor_jobs = [(str(uuid.uuid4()), "nobody") for _ in range(EVENTS // 3 + 1)]
    for i in paced(EVENTS, PUBLISH_RATE):
        wall, cpu = timed_publish(event_for(i, floor_jobs, backend))
        cost.floor.append(wall)
        cost.floor_cpu.append(cpu)

    with closing(http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)) as conn:
        one_id, one_key = new_user(conn, f"bench-stream-one-{uuid.uuid4().hex[:8]}@example.com")
        many_id, many_key = new_user(conn, f"bench-stream-k-{uuid.uuid4().hex[:8]}@example.com")
        targets = [(negotiate(conn, one_key), 1)]
        if k:
            targets.append((negotiate(conn, many_key), k))
    users = [one_id, many_id] if k else [one_id]
    jobs = [(str(uuid.uuid4()), users[j % len(users)]) for j in range(EVENTS // 3 + 1)]
    group_of = {messages.user_group(one_id): "1", messages.user_group(many_id): "K"}

    env = {
        **gateway_env(azurite, ADMIN_KEY),
        "QCOS_WEBPUBSUB_CONNECTION_STRING": wps.connection_string,
        "QCOS_LEDGER_SIGNING_KEY": signing.seed_b64(signing.new_private_key()),  # no warning
    }
    with Holder(targets) as child:
        held, refused, _ = child.ready()
        if refused:
            raise RuntimeError(f"part 3: connections refused {refused}")
        services = Services.build(Settings.from_env(env))
        publisher = services.stream.publisher
        assert publisher is not None
        cost.subscribers = sorted(Background._running)  # the app's background subscribers
        client = services.stream.client()
        send_to_group = client.send_to_group
        published: dict[tuple[str, str], float] = {}
        sends: dict[str, list[float]] = {"1": [], "K": [], "backend": []}
        send_cpu: list[float] = []

        def timed_send(group: str, message: dict[str, Any], **kwargs: Any) -> None:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                send_to_group(group, message, **kwargs)
            finally:
                sends[group_of.get(group, "backend")].append(time.perf_counter() - start)
                send_cpu.append(time.thread_time() - cpu)
                at = published.get((str(message.get("job_id")), str(message.get("status"))))
                if at is not None:
                    cost.queue_wait.append(start - at)

        client.send_to_group = timed_send  # the SDK client the stream's publisher sends with
        record = calls.record
        publishing = threading.current_thread()
        measuring = False

        def counting(method: str, service: str, name: str) -> None:
            thread = threading.current_thread()
            if measuring and thread is not publishing:
                label = thread.name
                if isinstance(thread, threading.Timer):  # the live view's delayed counts
                    label = "timer " + getattr(thread.function, "__qualname__", "?")
                cost.background_calls[label] += 1
            record(method, service, name)

        calls.record = counting  # every thread's calls, counted by thread below
        try:
            warm = [(str(uuid.uuid4()), u) for u in users]  # the SDK import, the first token
            for i in range(3 * len(warm)):
                events.publish(event_for(i, warm, backend))
            publisher.wait_idle(30)
            for values in [*sends.values(), send_cpu, cost.queue_wait]:
                values.clear()

            measuring = True
            with calls.counted() as tally:
                for i in paced(EVENTS, PUBLISH_RATE):
                    event = event_for(i, jobs, backend)
                    published[(event.id, event.status)] = time.perf_counter()
                    wall, cpu = timed_publish(event)
                    cost.publish.append(wall)
                    cost.publish_cpu.append(cpu)
            cost.job_path_calls = tally.total
            publisher.wait_idle(120)
            time.sleep(live.REFRESH_SECONDS + 0.5)  # a queue-depth count still due
            measuring = False
        finally:
            calls.record = record
        cost.sends, cost.send_cpu = sends, send_cpu
        cost.dropped, cost.failed = publisher.dropped, publisher.failed

        expected: list[list[tuple[str, str]]] = [[] for _ in targets]
        for i in range(EVENTS):
            job_id, user_id = jobs[(i // 3) % len(jobs)]
            expected[users.index(user_id)].append((job_id, STATUSES[i % 3]))
        answer = child.expect(expected, 30)
        cost.deliveries, cost.lost = answer["targets"], answer["lost"]

        # one storage call on the same Azurite, for scale
        repo = JobRepository(services.storage)
        with calls.counted() as tally:
            for _ in range(STORAGE_CALLS):
                start = time.perf_counter()
                repo.get(one_id, "no-such-job")
                cost.storage_call.append(time.perf_counter() - start)
        cost.storage_call_count = tally.total
        for name in list(Background._running):
            Background._running[name].close()
    return cost


def us(values: list[float], q: float) -> float:
    return pct(values, q) * 1000


def report_cost(c: Cost) -> None:
    print(f"== 3. cost per update on the app, in-process: {EVENTS} job events at "
          f"{PUBLISH_RATE:g}/s, alternating by job between a user with 1 connection and one with "
          f"{c.k}; subscribers in this process: {', '.join(c.subscribers)}")
    print(f"(a) shared.events.publish on the publishing thread, wall: p50 "
          f"{us(c.publish, 0.5):.1f} µs, p99 {us(c.publish, 0.99):.1f} µs, max "
          f"{max(c.publish) * 1e6:.0f} µs; the thread's own CPU (time.thread_time): p50 "
          f"{us(c.publish_cpu, 0.5):.1f} µs, p99 {us(c.publish_cpu, 0.99):.1f} µs (the rest of "
          f"the wall time is waiting for the GIL or a core)")
    print(f"    the same events with no subscriber, before the services were built: wall p50 "
          f"{us(c.floor, 0.5):.1f} µs, p99 {us(c.floor, 0.99):.1f} µs; CPU p50 "
          f"{us(c.floor_cpu, 0.5):.1f} µs (wall p50 with / without: "
          f"{pct(c.publish, 0.5) / pct(c.floor, 0.5):.1f})")
    print(f"    one storage call on this Azurite (JobRepository.get of an absent row; "
          f"{c.storage_call_count} calls counted for {STORAGE_CALLS}): p50 "
          f"{pct(c.storage_call, 0.5):.2f} ms, p99 {pct(c.storage_call, 0.99):.2f} ms = "
          f"{pct(c.storage_call, 0.5) / pct(c.publish, 0.5):.0f} x publish's wall p50")
    verdict = "" if c.job_path_calls == 0 else "  <-- NOT 0: a push puts a round trip on the job"
    print(f"(b) storage calls on the publishing thread: {c.job_path_calls} in {EVENTS} "
          f"publishes{verdict}; meanwhile in the background threads: "
          + (", ".join(f"{n} {v}" for n, v in sorted(c.background_calls.items())) or "none")
          + f" ({sum(c.background_calls.values()) / EVENTS:.3f} a publish at {PUBLISH_RATE:g} "
            f"events/s: these are capped per second and per user, not per update)")
    for label, name in (("1", "group of 1 connection"), ("K", f"group of {c.k} connections"),
                        ("backend", "backend_status group (the live view's queue depths)")):
        values = c.sends.get(label) or []
        if values:
            print(f"(c) send_to_group, {name}: {len(values)} sends, p50 "
                  f"{pct(values, 0.5):.2f} ms, p99 {pct(values, 0.99):.2f} ms")
    if c.send_cpu:
        print(f"    the sending thread's CPU per send (any group): p50 "
              f"{pct(c.send_cpu, 0.5):.2f} ms, p99 {pct(c.send_cpu, 0.99):.2f} ms")
    job_sends = len(c.sends.get("1", [])) + len(c.sends.get("K", []))
    print(f"    one send per job update whatever the connections: {job_sends} sends for "
          f"{EVENTS} events; an event's wait in the stream's queue before its send: p50 "
          f"{pct(c.queue_wait, 0.5):.2f} ms, p99 {pct(c.queue_wait, 0.99):.2f} ms; "
          f"dropped {c.dropped}, failed {c.failed}")
    for label, d in zip(("1", str(c.k)), c.deliveries, strict=False):
        print(f"    delivered to the group of {label}: {d['delivered']} of {d['expected']} "
              f"({d['complete']} of {d['held']} connections got all); event timestamp -> "
              f"receipt p50 {pct(d['latencies'], 0.5) if d['latencies'] else 0:.1f} ms")
    if c.lost:
        print(f"    CLOSED by the stand-in (close code: count): {c.lost}")
    print(f"(d) stated from the code, not measured: shared.network.live reads 2 rows (the "
          f"network job's runs, then its row) in its own thread per network-job run end (and "
          f"first run start), and counts open jobs (1 query) at most once every "
          f"{live.REFRESH_SECONDS:g} s per instance; shared.webhooks.dispatcher queries an "
          f"owner's subscriptions at most once every {dispatcher.CACHE_SECONDS:g} s and enqueues "
          f"one message per subscription that wants the event; the stream's publisher makes no "
          f"storage call. None of these run on the publishing thread.")


# -- the run ---------------------------------------------------------------------------------


def summary(lat: Latency, rungs: list[Rung], c: Cost | None) -> None:
    ids = lat.job_ids
    to_client = [lat.received[j] - lat.completed_at[j] for j in ids
                 if j in lat.received and j in lat.completed_at]
    from_stamp = [lat.received[j] - lat.stamped[j] for j in ids if j in lat.received]
    print("== summary (measured in this run)")
    rows = [
        ("completed updates at the client", f"{len(lat.received.keys() & set(ids))} of {len(ids)}"),
        ("completed_at -> client, p50 / p99", f"{pct(to_client, 0.5):.1f} / "
         f"{pct(to_client, 0.99):.1f} ms" if to_client else "n/a"),
        ("update timestamp -> client, p50 / p99", f"{pct(from_stamp, 0.5):.1f} / "
         f"{pct(from_stamp, 0.99):.1f} ms" if from_stamp else "n/a"),
    ]
    for r in rungs:
        lat_k = (f"{pct(r.latencies, 0.5):.1f} / {pct(r.latencies, 0.99):.1f} ms"
                 if r.latencies else "-")
        rows.append((f"K={r.k}: held, delivered, p50 / p99, RSS, CPU stand-in / clients",
                     f"{r.held}, {r.delivered}/{r.expected}, {lat_k}, {mib(r.rss_peak)}, "
                     f"{r.cpu_standin} / {r.cpu_clients} in {r.window:.1f} s"
                     + ("" if r.ok else "  (stopped here)")))
    if c is not None:
        rows += [
            ("publish on the job thread, wall p50 / p99",
             f"{us(c.publish, 0.5):.1f} / {us(c.publish, 0.99):.1f} µs "
             f"(no subscriber: {us(c.floor, 0.5):.1f} / {us(c.floor, 0.99):.1f} µs)"),
            ("publish, the job thread's CPU p50 / p99",
             f"{us(c.publish_cpu, 0.5):.1f} / {us(c.publish_cpu, 0.99):.1f} µs"),
            ("storage calls on the job thread per update", f"{c.job_path_calls / EVENTS:g}"),
            ("storage calls off it per update", f"{sum(c.background_calls.values()) / EVENTS:.3f}"),
            ("one storage call here, p50", f"{pct(c.storage_call, 0.5):.2f} ms"),
        ]
        for label, name in (("1", "send_to_group, group of 1, p50 / p99"),
                            ("K", f"send_to_group, group of {c.k}, p50 / p99")):
            values = c.sends.get(label) or []
            if values:
                rows.append((name, f"{pct(values, 0.5):.2f} / {pct(values, 0.99):.2f} ms"))
        if c.send_cpu:
            rows.append(("the sending thread's CPU per send, p50",
                         f"{pct(c.send_cpu, 0.5):.2f} ms"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def main() -> int:
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}; load average at start {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}")
    limit = max(Limits.max_connections, max(LADDER, default=0) + CONNECTION_MARGIN,
                COST_K + CONNECTION_MARGIN)
    port = free_port()
    upstream = f"http://127.0.0.1:{port}/api/webpubsub/events"
    started = time.monotonic()
    with (
        Azurite() as azurite,
        PubSubHost(upstreams={"qcos": upstream},
                   extra_args=["--max-connections", str(limit)]) as wps,
    ):
        assert wps.process is not None
        env = {
            **gateway_env(azurite, ADMIN_KEY),
            "QCOS_WEBPUBSUB_CONNECTION_STRING": wps.connection_string,
            "FUNCHOST_WEBPUBSUB_ROUTES": "api/v2/network/stream=qcos",
            "FUNCHOST_WEBPUBSUB_CONNECTION": "QCOS_WEBPUBSUB_CONNECTION_STRING",
        }
        with FuncHost(ROOT, env=env, port=port) as host:
            with closing(http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)) as conn:
                _, latency_key = new_user(conn, "bench-stream-latency@example.com")
                _, ladder_key = new_user(conn, "bench-stream-ladder@example.com")
            lat = asyncio.run(latency_run(host, latency_key))
            ok = report_latency(lat)
            rungs = ladder(host, wps.process.pid, ladder_key, limit)
            good = [r.k for r in rungs if r.ok]
            k = min(COST_K, max(good, default=0))
            c = cost_run(azurite, wps, host, lat.backend, k)
            report_cost(c)
    summary(lat, rungs, c)
    load = os.getloadavg()
    print(f"run took {time.monotonic() - started:.0f} s; load average at the end "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work on this machine counts in "
          f"every figure)")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
