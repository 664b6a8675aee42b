"""What funchost costs: start-up, HTTP round trips, the queue loop and a durable fan-out.

Each figure is measured beside a baseline in the same run, on the same Azurite:
- start: process start to the first 200, beside a bare `python -c "import azure..."`;
- HTTP: 8 concurrent keep-alive clients on a trivial function, beside a bare aiohttp server;
- queue: messages through trigger -> output -> trigger, beside the same two hops written
  directly with the storage SDK (receive, send, delete);
- durable: a fan-out of 20 trivial activities, start to Completed.
Run: `make bench` or `.venv/bin/python bench/funchost_bench.py`.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from azure.storage.queue import QueueClient
from azure.storage.queue.aio import QueueClient as AioQueueClient

from _common import pct
from funchost.testing import Azurite, FuncHost, free_port

APP = Path(__file__).parent / "apps" / "funchost_bench"
HTTP_REQUESTS = 2000
CLIENTS = 8
QUEUE_MESSAGES = 400
FANOUT = 20


def http_load(port: int, path: str) -> tuple[float, list[float]]:
    """Requests per second and latencies (s) with CLIENTS keep-alive clients."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = HTTP_REQUESTS // CLIENTS

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_client):
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def bare_server(port: int) -> subprocess.Popen[bytes]:
    code = textwrap.dedent(f"""
        from aiohttp import web
        async def ping(request): return web.Response(text="pong")
        app = web.Application(); app.router.add_get("/ping", ping)
        web.run_app(app, host="127.0.0.1", port={port}, print=None, access_log=None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/ping")
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("bare server did not start")


def drain(conn: str, queue: str, count: int, timeout: float = 300) -> float:
    """Receive and delete `count` messages from `queue`; the time when the last one came."""
    client = QueueClient.from_connection_string(conn, queue)
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {seen}/{count} messages reached {queue}")
        batch = list(client.receive_messages(messages_per_page=32, max_messages=32))
        for m in batch:
            client.delete_message(m)
        seen += len(batch)
        if not batch:
            time.sleep(0.02)
    return time.perf_counter()


def fill(conn: str, queue: str, count: int) -> None:
    client = QueueClient.from_connection_string(conn, queue)
    try:
        client.create_queue()
    except Exception:
        pass
    for i in range(count):
        client.send_message(base64.b64encode(f"message {i}".encode()).decode())


async def raw_hop(conn: str, source: str, target: str, count: int) -> None:
    """One hop written with the SDK: receive a batch of 16, send each on, delete it."""
    src = AioQueueClient.from_connection_string(conn, source)
    dst = AioQueueClient.from_connection_string(conn, target)
    moved = 0
    async with src, dst:
        while moved < count:
            batch = [m async for m in src.receive_messages(messages_per_page=16, max_messages=16)]
            if not batch:
                await asyncio.sleep(0.02)
                continue

            async def forward(m: object) -> None:
                await dst.send_message(m.content)  # type: ignore[attr-defined]
                await src.delete_message(m)  # type: ignore[arg-type]

            await asyncio.gather(*(forward(m) for m in batch))
            moved += len(batch)


def raw_queue_rate(conn: str) -> float:
    for q in ("raw-a", "raw-b", "raw-c"):
        try:
            QueueClient.from_connection_string(conn, q).create_queue()
        except Exception:
            pass
    fill(conn, "raw-a", QUEUE_MESSAGES)

    async def both() -> None:
        await asyncio.gather(raw_hop(conn, "raw-a", "raw-b", QUEUE_MESSAGES),
                             raw_hop(conn, "raw-b", "raw-c", QUEUE_MESSAGES))

    start = time.perf_counter()
    result: dict[str, float] = {}
    drainer = threading.Thread(
        target=lambda: result.update(end=drain(conn, "raw-c", QUEUE_MESSAGES))
    )
    drainer.start()
    asyncio.run(both())
    drainer.join()
    return QUEUE_MESSAGES / (result["end"] - start)


def main() -> None:
    with Azurite() as azurite:
        conn = azurite.connection_string
        env = {"AzureWebJobsStorage": conn, "FUNCTIONS_WORKER_RUNTIME": "python"}

        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import azure.functions, azure.durable_functions, "
                        "azure.storage.queue, aiohttp"], check=True)
        bare_import = time.perf_counter() - t0
        host = FuncHost(APP, env=env)
        t0 = time.perf_counter()
        host.start()
        first = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
        first.request("GET", "/ping")
        assert first.getresponse().status == 200
        startup = time.perf_counter() - t0
        print(f"start to first 200: funchost {startup * 1000:.0f} ms; bare python importing the "
              f"same SDKs {bare_import * 1000:.0f} ms; ratio {startup / bare_import:.1f}x")

        try:
            port = free_port()
            bare = bare_server(port)
            http_load(port, "/ping")  # warm-up
            bare_rps, bare_lat = http_load(port, "/ping")
            bare.terminate()
            http_load(host.port, "/ping")
            rps, lat = http_load(host.port, "/ping")
            print(f"HTTP, {CLIENTS} clients, {HTTP_REQUESTS} requests: funchost {rps:.0f} req/s "
                  f"(p50 {pct(lat, .5):.2f} ms, p99 {pct(lat, .99):.2f} ms); bare aiohttp "
                  f"{bare_rps:.0f} req/s (p50 {pct(bare_lat, .5):.2f} ms, p99 "
                  f"{pct(bare_lat, .99):.2f} ms); funchost/bare {rps / bare_rps:.2f}")

            raw = raw_queue_rate(conn)
            fill(conn, "bench-a", QUEUE_MESSAGES)
            start = time.perf_counter()
            end = drain(conn, "bench-c", QUEUE_MESSAGES)
            rate = QUEUE_MESSAGES / (end - start)
            print(f"queue, {QUEUE_MESSAGES} messages through trigger -> output -> trigger: "
                  f"funchost {rate:.0f} msg/s; the same two hops with the SDK {raw:.0f} msg/s; "
                  f"funchost/SDK {rate / raw:.2f}")

            times = []
            for _ in range(5):
                conn_http = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
                t0 = time.perf_counter()
                conn_http.request("POST", f"/fanout/{FANOUT}")
                status_url = json.loads(conn_http.getresponse().read())["statusQueryGetUri"]
                path = status_url.split(str(host.port), 1)[1]
                while True:
                    conn_http.request("GET", path)
                    body = json.loads(conn_http.getresponse().read())
                    if body["runtimeStatus"] in ("Completed", "Failed"):
                        break
                    time.sleep(0.005)
                times.append(time.perf_counter() - t0)
                assert body["output"] == sum(i * i for i in range(FANOUT)), body
            print(f"durable fan-out of {FANOUT} activities, start to Completed: median "
                  f"{statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms "
                  f"(5 runs)")
        finally:
            host.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
