"""Test helper: run pubsubhost as a real process.

    with PubSubHost(upstreams={"qcos": "http://127.0.0.1:7071/api/webpubsub/events"}) as wps:
        client = WebPubSubServiceClient.from_connection_string(wps.connection_string, hub="qcos")

The process gets a free port and a fresh access key; `stop()` (or the end of the `with`
block) ends it with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["PubSubHost", "PubSubHostError", "free_port"]

_SRC_DIR = Path(__file__).resolve().parent.parent


class PubSubHostError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PubSubHost:
    def __init__(
        self,
        *,
        upstreams: Mapping[str, str] | None = None,
        hub_config: Mapping[str, Any] | None = None,
        access_key: str | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.port = port or free_port()
        self.access_key = access_key or secrets.token_urlsafe(32)
        self.upstreams = dict(upstreams or {})
        self.hub_config = hub_config
        self.extra_args = list(extra_args or [])
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[str] | None = None
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._config_dir = tempfile.TemporaryDirectory(prefix="pubsubhost-")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=http://127.0.0.1;Port={self.port};AccessKey={self.access_key};Version=1.0;"
        )

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def start(self) -> PubSubHost:
        import json

        command = [
            sys.executable,
            "-m",
            "pubsubhost",
            "--port",
            str(self.port),
            f"--access-key={self.access_key}",  # a key may begin with "-"
            *self.extra_args,
        ]
        for hub, url in self.upstreams.items():
            command += ["--upstream", f"{hub}={url}"]
        if self.hub_config is not None:
            path = Path(self._config_dir.name) / "hubs.json"
            path.write_text(json.dumps(self.hub_config), encoding="utf-8")
            command += ["--hub-config", str(path)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_SRC_DIR), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, text=True, env=env
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PubSubHostError(f"pubsubhost exited early:\n{self.output()}")
            if "ConnectionString:" in self.output():
                return self
            time.sleep(0.05)
        self.stop()
        raise PubSubHostError(f"pubsubhost did not start in time:\n{self.output()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._config_dir.cleanup()

    def __enter__(self) -> PubSubHost:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
