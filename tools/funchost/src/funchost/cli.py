"""`funchost start`: run a Python v2 Functions app without Core Tools."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from .settings import ConfigError
from .shutdown import end_child_processes, exit_now

# The attributes every log record has; anything else on a record is the app's (logging's
# `extra=`, or a record factory's fields such as a request id) and is shown after the message.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        text = super().formatMessage(record)
        extras = [
            f"{name}={value}"
            for name, value in vars(record).items()
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_")
        ]
        return f"{text} ({' '.join(extras)})" if extras else text


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="funchost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="run the app in the current or given directory")
    start.add_argument("--app-dir", default=".", type=Path)
    start.add_argument("--port", default=7071, type=int)
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument(
        "--grace-period",
        default=2.0,
        type=float,
        help="seconds in-flight invocations get to finish on shutdown (a second Ctrl-C: none)",
    )
    start.add_argument(
        "--verbose",
        action="store_true",
        help="log at DEBUG, and the Azure SDK's and aiohttp's request lines too",
    )
    args = parser.parse_args(argv)

    # Until the event loop takes over: SIGINT and SIGTERM (even if inherited as ignored, as a
    # background job of a script gets SIGINT) interrupt the start without a traceback.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    # After the app's own exit handlers (registered later, so run earlier): anything it left.
    atexit.register(end_child_processes)

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter("[%(asctime)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        for noisy in ("azure", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    from .host import Host

    started = time.perf_counter()
    host = Host(args.app_dir, args.host, args.port, args.grace_period)
    try:
        try:
            host.load()
        except ConfigError as exc:
            print(f"funchost: {exc}", file=sys.stderr)
            return 2
        except Exception:  # the app's own import failed: show it as the worker would
            logging.getLogger("funchost").exception("funchost: the app failed to load")
            return 2
        try:
            asyncio.run(host.serve(started))
        except OSError as exc:
            print(f"funchost: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:  # a signal before the event loop handled them, or after
        logging.getLogger("funchost").info("Interrupted; stopping now")
        exit_now(130)
    # From here a signal leaves at once: the interpreter's exit must not raise.
    signal.signal(signal.SIGINT, lambda signum, frame: exit_now(0))
    signal.signal(signal.SIGTERM, lambda signum, frame: exit_now(0))
    if host.abandoned:  # sync functions still run in threads: the interpreter would wait
        exit_now(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
