"""Test helpers: run Azurite and funchost as real processes.

Used by funchost's own tests and by the product's end-to-end tests::

    with Azurite() as storage, FuncHost(app_dir, env={"AzureWebJobsStorage":
                                                      storage.connection_string}) as host:
        requests.get(f"{host.url}/api/health")

Both classes start a child process in its own process group, wait until it is
ready (or raise with its output), and stop the whole group on `stop()` or when the
`with` block ends. Nothing here talks to the network beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from .shutdown import process_table

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "Azurite",
    "AzuriteError",
    "FuncHost",
    "FuncHostError",
    "find_azurite",
    "free_port",
    "process_family",
]

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
LOCALHOST = "127.0.0.1"
_SRC_DIR = Path(__file__).resolve().parent.parent  # the folder that holds the funchost package


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    The port is only free when this returns; a process that binds it later can still
    lose a race with another process, so starters retry on a failed bind.
    """
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):  # held open together, so the ports are distinct
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def process_family(*roots: int) -> set[int]:
    """The running processes that are `roots`, descend from one, or belong to a process group
    or session that one of those leads (Linux; empty where there is no /proc).

    Taken while a program runs and again after it exited, with the first answer as `roots`,
    it tells what the program left behind: orphans leave the tree but keep their group and
    session.
    """
    table = process_table()
    leaders = set(roots)
    family: set[int] = set()
    while True:
        found = {
            pid
            for pid, (ppid, pgrp, session) in table.items()
            if pid in leaders or ppid in leaders or pgrp in leaders or session in leaders
        }
        if found <= family:
            return family
        family |= found
        leaders |= found


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the process group led by `process` (it was started in a new session).

    The group is signalled even when the leader has exited, so children it left behind
    go too.
    """
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_process(process: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM the group, wait up to `grace` seconds, then SIGKILL; return the exit code."""
    if process.poll() is None:
        _kill_group(process, signal.SIGTERM)
        try:
            return process.wait(timeout=max(grace, 0.0))
        except subprocess.TimeoutExpired:
            pass
    _kill_group(process, signal.SIGKILL)
    return process.wait()


def find_azurite() -> str:
    """The Azurite executable: $AZURITE_BIN, else node_modules/.bin/azurite in the
    current directory or a parent of it, else `azurite` on PATH.

    Raises AzuriteError when none exists.
    """
    configured = os.environ.get("AZURITE_BIN")
    if configured:
        return configured
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / "node_modules" / ".bin" / "azurite"
        if candidate.exists():
            return str(candidate)
    on_path = shutil.which("azurite")
    if on_path:
        return on_path
    raise AzuriteError(
        "Azurite not found: set AZURITE_BIN, run `npm ci` at the repository root "
        "(node_modules/.bin/azurite), or put azurite on PATH"
    )


class AzuriteError(RuntimeError):
    """Azurite could not be found or did not start; the message carries its output."""


class FuncHostError(RuntimeError):
    """funchost did not come up. `returncode` is its exit status if it exited
    (None if it was still running at the deadline); `log` is its whole log file and
    `log[log_offset:]` the part this start wrote."""

    def __init__(self, message: str, returncode: int | None, log: str, log_offset: int = 0) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.log = log
        self.log_offset = log_offset


class Azurite:
    """Azurite (blob, queue, table) on three free ports of 127.0.0.1, in memory.

    Contract: `start()` returns once all three ports accept connections, or raises
    AzuriteError (with Azurite's output) after `startup_timeout` seconds or if the
    process exits first. A port taken between choosing and binding it is retried
    with new ports (up to three attempts). `stop()` ends the process group and is
    idempotent. Data lives only as long as the process.
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        startup_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.blob_port = 0
        self.queue_port = 0
        self.table_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._workspace: tempfile.TemporaryDirectory[str] | None = None
        self._output_path: Path | None = None

    @property
    def connection_string(self) -> str:
        """The full devstoreaccount1 connection string with the three endpoints."""
        if self._process is None:
            raise AzuriteError("Azurite is not started")
        base = f"http://{LOCALHOST}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{AZURITE_ACCOUNT};"
        )

    @property
    def running(self) -> bool:
        """Whether the Azurite process is alive."""
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """What Azurite wrote to stdout and stderr so far."""
        if self._output_path is None or not self._output_path.exists():
            return ""
        return self._output_path.read_text(encoding="utf-8", errors="replace")

    def start(self) -> Azurite:
        """Start Azurite and wait until its ports accept connections; returns self."""
        if self.running:
            return self
        binary = self.binary or find_azurite()
        self._workspace = tempfile.TemporaryDirectory(prefix="azurite-")
        self._output_path = Path(self._workspace.name) / "azurite.log"
        last_error = ""
        for _attempt in range(3):
            self.blob_port, self.queue_port, self.table_port = _free_ports(3)
            args = [
                binary,
                "--blobHost",
                LOCALHOST,
                "--blobPort",
                str(self.blob_port),
                "--queueHost",
                LOCALHOST,
                "--queuePort",
                str(self.queue_port),
                "--tableHost",
                LOCALHOST,
                "--tablePort",
                str(self.table_port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
                *self.extra_args,
            ]
            with open(self._output_path, "ab") as out:
                try:
                    self._process = subprocess.Popen(
                        args,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=self._workspace.name,
                        start_new_session=True,
                    )
                except OSError as exc:
                    self._cleanup_workspace()
                    raise AzuriteError(f"cannot run Azurite at {binary!r}: {exc}") from exc
            error = self._wait_ready()
            if error is None:
                return self
            last_error = error
            process = self._process
            if process is not None and process.poll() is None:  # timed out: don't retry
                _stop_process(process, 2.0)
                break
            if "EADDRINUSE" not in self.output():
                break
        output = self.output()
        self._process = None
        self._cleanup_workspace()
        raise AzuriteError(f"{last_error}\n--- Azurite output ---\n{_tail(output)}")

    def _wait_ready(self) -> str | None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        ports = (self.blob_port, self.queue_port, self.table_port)
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                return f"Azurite exited with status {code} before it was ready"
            if all(_port_open(p) for p in ports):
                return None
            time.sleep(0.1)
        return (
            f"Azurite did not accept connections on ports {ports} within {self.startup_timeout:g}s"
        )

    def stop(self, grace: float = 5.0) -> None:
        """Stop Azurite (SIGTERM, then SIGKILL after `grace` s); safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            _stop_process(process, grace)
        self._cleanup_workspace()

    def _cleanup_workspace(self) -> None:
        if self._workspace is not None:
            self._workspace.cleanup()
            self._workspace = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FuncHost:
    """`python -m funchost start` on an app directory, as a child process.

    Contract:
    - `env` is merged over `os.environ` (pass AzureWebJobsStorage there); the funchost
      source folder is put first on PYTHONPATH so an uninstalled checkout runs too.
    - stdout and stderr go to `log_path` (a temporary file if not given), appended to
      across restarts; `log_text()` reads it.
    - `start()` returns once `GET /admin/host/status` answers 200; if the process exits
      or `startup_timeout` passes first, it raises FuncHostError with the exit status
      and the log (the process is stopped in the timeout case).
    - The port is chosen once (a free one unless given) and kept by `restart()`, so
      `url` stays valid.
    - `stop(grace)` sends SIGTERM and SIGKILLs after `grace` seconds; `kill()` sends
      SIGKILL at once (a crash). Both return the exit status and are idempotent.
    - `launch()` starts without waiting; `interrupt()` sends SIGINT to the process group (a
      terminal's Ctrl-C) and `wait(timeout)` waits for the exit status.
    """

    def __init__(
        self,
        app_dir: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.env = dict(env or {})
        self._port_is_ours = port is None
        self._started_once = False
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.python = python
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if log_path is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="funchost-")
            self.log_path = Path(self._tempdir.name) / "funchost.log"
        else:
            self.log_path = Path(log_path)
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:53211 (no trailing slash, no route prefix)."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while running, else None."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the funchost process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line `start()` runs."""
        return [
            self.python,
            "-m",
            "funchost",
            "start",
            "--app-dir",
            str(self.app_dir),
            "--port",
            str(self.port),
            "--host",
            LOCALHOST,
            *self.extra_args,
        ]

    def child_env(self) -> dict[str, str]:
        """The environment the child gets: os.environ, then `env`, then PYTHONPATH."""
        merged = {**os.environ, **self.env}
        # A source checkout (src/funchost) runs without being installed; an installed
        # funchost is importable already (and site-packages must not precede the stdlib).
        paths = [str(_SRC_DIR)] if _SRC_DIR.name not in ("site-packages", "dist-packages") else []
        if merged.get("PYTHONPATH"):
            paths += [str(Path(p).resolve()) for p in merged["PYTHONPATH"].split(os.pathsep) if p]
        merged["PYTHONPATH"] = os.pathsep.join(paths)
        merged["PYTHONUNBUFFERED"] = "1"
        return merged

    def start(self) -> FuncHost:
        """Start funchost and wait for /admin/host/status to answer 200; returns self.

        On the first start with a port funchost chose itself, a port taken in the
        meantime ("cannot serve on") is retried with another free port.
        """
        if self.running:
            return self
        attempts = 3 if self._port_is_ours and not self._started_once else 1
        for attempt in range(attempts):
            error = self._start_once()
            if error is None:
                self._started_once = True
                return self
            retry = (
                attempt + 1 < attempts
                and error.returncode is not None
                and "cannot serve on" in error.log[error.log_offset :]
            )
            if not retry:
                raise error
            self.port = free_port()
        raise AssertionError("unreachable")

    def launch(self) -> FuncHost:
        """Start the funchost process and return at once, without waiting for it to serve
        (to interrupt a start, say); returns self."""
        if not self.running:
            self._launch()
        return self

    def _launch(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.returncode = None
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.app_dir,
                env=self.child_env(),
                start_new_session=True,
            )
        self._process = process
        return process

    def _start_once(self) -> FuncHostError | None:
        offset = len(self.log_text())
        process = self._launch()
        deadline = time.monotonic() + self.startup_timeout
        status_url = f"{self.url}/admin/host/status"
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                _kill_group(process, signal.SIGKILL)  # anything it left behind
                self.returncode = code
                self._process = None
                log_text = self.log_text()
                return FuncHostError(
                    f"funchost exited with status {code} before it was ready "
                    f"(app {self.app_dir}):\n{_tail(log_text[offset:])}",
                    code,
                    log_text,
                    offset,
                )
            try:
                with urllib.request.urlopen(status_url, timeout=1.0) as response:
                    if response.status == 200 and process.poll() is None:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop(grace=2.0)
        log_text = self.log_text()
        return FuncHostError(
            f"funchost did not answer {status_url} within {self.startup_timeout:g}s "
            f"(app {self.app_dir}):\n{_tail(log_text[offset:])}",
            None,
            log_text,
            offset,
        )

    def log_text(self) -> str:
        """Everything funchost wrote so far (all runs of this object)."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, substring: str, timeout: float = 10.0, *, start: int = 0) -> str:
        """Wait until the log, from character `start` on, contains `substring`.

        Returns the whole log text; raises TimeoutError with the log's tail otherwise.
        Pass `start=len(host.log_text())` to wait for a line written from now on.
        """
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if substring in text[start:]:
                return text
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{substring!r} not in the funchost log within {timeout:g}s:\n{_tail(text)}"
                )
            time.sleep(0.05)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit status (None if never started)."""
        process, self._process = self._process, None
        if process is not None:
            self.returncode = _stop_process(process, grace)
        return self.returncode

    def interrupt(self) -> None:
        """SIGINT to funchost's process group, as Ctrl-C in a terminal sends it to the
        foreground group (funchost and the processes it started); returns at once."""
        if self._process is not None:
            _kill_group(self._process, signal.SIGINT)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit; its exit status. Raises `subprocess.TimeoutExpired`
        after `timeout` seconds (it keeps running), RuntimeError if it was never started."""
        process = self._process
        if process is None:
            if self.returncode is None:
                raise RuntimeError("funchost was not started")
            return self.returncode
        code = process.wait(timeout)
        self.returncode = code  # the process stays known: stop() still ends its group
        return code

    def kill(self) -> int | None:
        """SIGKILL at once, as a crash would; the exit status (None if never started)."""
        process, self._process = self._process, None
        if process is not None:
            _kill_group(process, signal.SIGKILL)
            self.returncode = process.wait()
        return self.returncode

    def restart(self, grace: float = 10.0) -> FuncHost:
        """Stop (gracefully) if running, then start again on the same port."""
        self.stop(grace)
        return self.start()

    def close(self) -> None:
        """Stop and delete the temporary log folder, if one was made."""
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> FuncHost:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
