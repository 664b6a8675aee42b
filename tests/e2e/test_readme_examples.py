"""End to end: every shell example of the README, run as written against funchost on Azurite.

The examples run in order, with bash and the real `curl`, as one reader's shell session: the
variables the README sets (`ADMIN`, `KEY`, `BELL`, `PUBLIC_KEY`) are set again before each
later command, and an id the README elides (`5d0c...`) is the one the answer above it gave.
Each answer is compared with what the README shows it answers (`readme_session`'s docstring
says how `...`, ids, times and measured numbers are read). A read (a GET) that answers a job
still queued or running, or a webhook's delivery log still empty, is asked again until it
matches or two minutes pass, as a reader asks again while a job runs.

What stands in for `make run`: the test starts Azurite and funchost itself (as the other e2e
tests do), with an admin key that it also writes to `.qcos/admin-key` (mode 600) in the
session's folder, where `make run` keeps the key it generates; `ADMIN=$(cat .qcos/admin-key)`
reads it there. The session's folder is a temporary one holding links to the repository's
`.venv` and `shared/` (for `.venv/bin/python -m shared.ledger.verify`), so `bundle.json` is
written there. The gateway listens on a free port: `http://127.0.0.1:7071` (or
`http://localhost:7071`) in a command is replaced by its address, in the text of a
here-document too (the vendor client's script, fed to `.venv/bin/python -`, which has
softqcos-sdk from requirements-dev.txt).

The webhook example's receiver is what the README has a reader run, `python3 -m http.server`
(`SimpleHTTPRequestHandler`, which answers a `POST` with 501), on a thread, on 127.0.0.1:8000
where that port is free (else on a free one, and `http://127.0.0.1:8000` is replaced as the
gateway's address is). The host gets what `local.settings.json.example` sets for it,
`QCOS_WEBHOOKS_ALLOW_LOOPBACK=true`, and one retry, 10 minutes after the first attempt, so the
delivery log the README reads holds that first attempt alone.

No credentials of any supplier are given to the app, so every supplier runs emulated, as the
README's examples say. The README's other code blocks are no shell sessions: the ```python
block (the published client) is replayed by `test_published_client.py`, the rate-limit headers
are checked by the functions tests.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from funchost.testing import Azurite, FuncHost
from tests.e2e.readme_session import RECEIVER_URL, Session, check, read_readme

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# The README's commands that this test does not run, each with the reason. They are listed in
# ```sh blocks without `$ ` lines (no output shown); a command listed there and not here fails
# the test, so none is skipped silently.
EXCLUDED = {
    "make run": "the test starts what it starts (Azurite, funchost, an admin key in "
    ".qcos/admin-key) itself; tests/e2e/test_run_script.py runs scripts/run.sh",
    "make test": "it runs this test (and the rest: ruff, mypy, pytest)",
    "func start": "Azure Functions Core Tools cannot be installed here; funchost stands in",
    "pip install softqcos-sdk==3.13.1": "it installs into the reader's own environment; "
    "requirements-dev.txt pins it, so .venv (which the test runs the client's script with) has it",
}


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python3 -m http.server` on a thread: its URL, `RECEIVER_URL` where its port was free."""
    handler = partial(SimpleHTTPRequestHandler, directory=tmp_path_factory.mktemp("receiver"))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", int(RECEIVER_URL.rsplit(":", 1)[1])), handler)
    except OSError:  # taken
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, receiver: str) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("reader")
    admin_key = "qcos_admin_" + secrets.token_hex(20)
    key_file = folder / ".qcos" / "admin-key"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(admin_key + "\n")
    key_file.chmod(0o600)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / "shared").symlink_to(ROOT / "shared")
    with Azurite() as storage:  # of its own: estimates read the queue and the open jobs
        settings = {
            "AzureWebJobsStorage": storage.connection_string,
            "QCOS_ADMIN_API_KEY": admin_key,
            "QCOS_WEBHOOKS_ALLOW_LOOPBACK": "true",
            "QCOS_WEBHOOKS_RETRY_SECONDS": "600",
        }
        with FuncHost(ROOT, env=settings) as host:
            yield Session(folder, host.url, dict(os.environ), receiver)


def test_the_readme_lists_no_command_without_its_output_but_the_excluded_ones() -> None:
    listed = read_readme(README.read_text(encoding="utf-8")).listed
    assert sorted({command for _, command in listed}) == sorted(EXCLUDED), listed


@pytest.mark.timeout(900)
def test_every_readme_example_answers_what_the_readme_shows(session: Session) -> None:
    examples = read_readme(README.read_text(encoding="utf-8")).examples
    assert len(examples) >= 25  # the parser found the README's examples
    failures = []
    for example in examples:
        try:
            problems = check(session, example)
        except AssertionError as exc:  # a command that cannot be written out
            problems = [str(exc)]
        if problems:
            failures.append("\n  ".join([str(example), *problems]))
    assert not failures, f"{len(failures)} of {len(examples)} examples differ:\n\n" + "\n\n".join(
        failures
    )
