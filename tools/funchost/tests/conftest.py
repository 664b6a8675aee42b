"""Fixtures for funchost's tests: one Azurite per run, sample apps run by funchost.

- `azurite`: one Azurite (in memory, free ports) for the whole session.
- `storage`: a sync view of Azurite's queues for tests (send, peek, wait).
- `run_app` / `run_app_module`: start a sample app of tests/apps/<name>/ with funchost.
  Each run works on a fresh copy of the app directory, so host.json can be varied
  and local.settings.json written per test. Every `%Name%` the app references whose
  name ends in `Queue` gets a unique queue name unless the test sets it, so tests
  never share queues. FUNCHOST_TEST_RECORDS names a JSON-lines file the sample apps
  append what they saw to (`app.records()`).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from funchost.testing import Azurite, FuncHost

APPS_DIR = Path(__file__).parent / "apps"
_REFERENCE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")
_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def unique_queue_name(prefix: str) -> str:
    """A valid queue name (lowercase, 3..63 chars) no other test uses."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-")[:40] or "q"
    return f"{cleaned}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as instance:
        yield instance


class Storage:
    """Synchronous access to Azurite's queues, for arranging and checking tests."""

    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string
        self.service = QueueServiceClient.from_connection_string(connection_string)

    def client(self, queue: str, *, base64_encode: bool = False) -> QueueClient:
        policy = TextBase64EncodePolicy() if base64_encode else None
        return QueueClient.from_connection_string(
            self.connection_string, queue, message_encode_policy=policy
        )

    def send(self, queue: str, text: str, *, base64_encode: bool = True) -> None:
        """Put a message; base64-encoded as host.json's default encoding expects, unless told."""
        client = self.client(queue, base64_encode=base64_encode)
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        client.send_message(text)

    def peek(self, queue: str) -> list[str]:
        """The raw stored text of up to 32 visible messages (none if the queue is missing)."""
        try:
            return [m.content for m in self.client(queue).peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []

    def wait_for_messages(self, queue: str, count: int = 1, timeout: float = 15.0) -> list[str]:
        """Wait until `queue` holds at least `count` visible messages; their raw text."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.peek(queue)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"queue {queue!r} holds {found!r}, expected {count} messages")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def storage(azurite: Azurite) -> Storage:
    return Storage(azurite.connection_string)


@dataclass
class RunningApp:
    """A sample app running under funchost."""

    name: str
    app_dir: Path
    host: FuncHost
    settings: dict[str, str]
    records_path: Path

    @property
    def url(self) -> str:
        return self.host.url

    def records(self, function: str | None = None) -> list[dict[str, Any]]:
        """What the app's functions recorded, oldest first (optionally one function's)."""
        if not self.records_path.exists():
            return []
        lines = self.records_path.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [r for r in found if function is None or r.get("function") == function]

    def wait_for_records(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15.0,
        function: str | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until `predicate(records)` holds; the records then. Raises with the host log."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.records(function)
            if predicate(found):
                return found
            if time.monotonic() >= deadline:
                tail = "\n".join(self.host.log_text().splitlines()[-40:])
                raise TimeoutError(
                    f"records of {function or 'all functions'} never satisfied the "
                    f"condition within {timeout:g}s: {found!r}\n--- funchost log ---\n{tail}"
                )
            time.sleep(0.05)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class AppRunner:
    """Starts sample apps with funchost against the session's Azurite; stops them all."""

    def __init__(self, azurite: Azurite, workdir: Path) -> None:
        self.azurite = azurite
        self.workdir = workdir
        self.apps: list[RunningApp] = []
        self._counter = itertools.count(1)

    def prepare(
        self,
        name: str,
        *,
        host_json: dict[str, Any] | None = None,
        local_settings: dict[str, str] | None = None,
    ) -> Path:
        """Copy tests/apps/<name> to a fresh folder, applying host.json overrides and
        writing local.settings.json `Values` if given; the copy's path."""
        target = self.workdir / f"{name}-{next(self._counter)}"
        shutil.copytree(APPS_DIR / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        if host_json:
            path = target / "host.json"
            data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            path.write_text(json.dumps(_merge(data, host_json), indent=2), encoding="utf-8")
        if local_settings is not None:
            (target / "local.settings.json").write_text(
                json.dumps({"IsEncrypted": False, "Values": local_settings}), encoding="utf-8"
            )
        return target

    def settings_for(self, app_dir: Path, settings: dict[str, str] | None) -> dict[str, str]:
        """The env for one run: storage, records file, unique queues, then `settings`."""
        env = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "FUNCHOST_TEST_RECORDS": str(app_dir / "records.jsonl"),
            "FUNCHOST_QUEUE_LEASE_SECONDS": "4",
        }
        sources = [app_dir / "function_app.py", app_dir / "host.json"]
        text = "\n".join(p.read_text(encoding="utf-8") for p in sources if p.exists())
        for ref in sorted(set(_REFERENCE.findall(text))):
            if ref.endswith("Queue"):
                env[ref] = unique_queue_name(ref.removesuffix("Queue"))
        env.update(settings or {})
        return env

    def host_for(
        self,
        name: str,
        *,
        settings: dict[str, str] | None = None,
        host_json: dict[str, Any] | None = None,
        local_settings: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> tuple[FuncHost, Path, dict[str, str]]:
        """A FuncHost for a fresh copy of the app, not started (to test refusals)."""
        app_dir = self.prepare(name, host_json=host_json, local_settings=local_settings)
        env = self.settings_for(app_dir, settings)
        host = FuncHost(
            app_dir,
            env=env,
            log_path=app_dir / "funchost.log",
            startup_timeout=30,
            extra_args=extra_args or (),
        )
        return host, app_dir, env

    def start(
        self,
        name: str,
        *,
        settings: dict[str, str] | None = None,
        host_json: dict[str, Any] | None = None,
        local_settings: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> RunningApp:
        """Run tests/apps/<name> (funchost given `extra_args`) and wait until it serves;
        stopped at teardown."""
        host, app_dir, env = self.host_for(
            name,
            settings=settings,
            host_json=host_json,
            local_settings=local_settings,
            extra_args=extra_args,
        )
        app = RunningApp(name, app_dir, host, env, app_dir / "records.jsonl")
        self.apps.append(app)
        host.start()
        return app

    def close(self, show_logs: bool = False) -> None:
        for app in self.apps:
            app.host.stop(grace=5.0)
            if show_logs:
                print(
                    f"\n--- funchost log of {app.name} ({app.app_dir}) ---\n{app.host.log_text()}"
                )


@pytest.fixture
def run_app(
    azurite: Azurite, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[AppRunner]:
    """Start sample apps for one test; their logs are printed if the test fails."""
    runner = AppRunner(azurite, tmp_path)
    yield runner
    runner.close(show_logs=request.node.stash.get(_FAILED, False))


@pytest.fixture(scope="module")
def run_app_module(
    azurite: Azurite,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppRunner]:
    """Start sample apps shared by the tests of one module."""
    runner = AppRunner(azurite, tmp_path_factory.mktemp("apps"))
    yield runner
    runner.close()
