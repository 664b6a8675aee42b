"""A webhook receiver for tests: a local HTTP server on a thread (plain http on 127.0.0.1, a
free port) that records every POST and answers `statuses` in turn, then 200."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float  # time.monotonic() when it arrived


@dataclass
class Receiver:
    path: str = "/hook"
    port: int = 0
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def got(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """What arrived once `count` POSTs have (fails after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while len(found := self.got()) < count:
            assert time.monotonic() < deadline, f"{len(found)} of {count} deliveries: {found}"
            time.sleep(0.1)
        return found


@contextmanager
def receiving(path: str = "/hook") -> Iterator[Receiver]:
    """A running receiver at `path`, stopped on leaving."""
    state = Receiver(path)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            with state.lock:
                state.received.append(
                    Received(self.path, dict(self.headers), body, time.monotonic())
                )
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
