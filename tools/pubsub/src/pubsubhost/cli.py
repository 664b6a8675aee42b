"""`pubsubhost [start]`: serve a local Azure Web PubSub and print its connection string.

Settings come from flags, else from the environment:

  --port               PUBSUBHOST_PORT         (7080)
  --host               PUBSUBHOST_HOST         (127.0.0.1)
  --access-key         PUBSUBHOST_ACCESS_KEY   (a new random key each start)
  --hub-config FILE    PUBSUBHOST_HUB_CONFIG   (JSON: hub -> {"eventHandlers": [...]})
  --upstream HUB=URL   PUBSUBHOST_UPSTREAMS    (several, separated by spaces)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from .service import PubSubService
from .settings import ConfigError, HubSettings, Limits, Settings, load_hub_config, parse_upstream


def _settings(args: argparse.Namespace) -> Settings:
    hubs = load_hub_config(Path(args.hub_config)) if args.hub_config else {}
    for value in args.upstream or []:
        hub, extra = parse_upstream(value)
        current = hubs.get(hub, HubSettings())
        hubs[hub] = replace(current, event_handlers=current.event_handlers + extra.event_handlers)
    limits = Limits(
        max_connections=args.max_connections,
        max_frame_bytes=args.max_frame_bytes,
        max_messages_per_second=args.max_messages_per_second,
    )
    kwargs = {"access_key": args.access_key} if args.access_key else {}
    return Settings(host=args.host, port=args.port, hubs=hubs, limits=limits, **kwargs)


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="pubsubhost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--port", type=int, default=int(env("PUBSUBHOST_PORT", "7080")))
    p.add_argument("--host", default=env("PUBSUBHOST_HOST", "127.0.0.1"))
    p.add_argument("--access-key", default=env("PUBSUBHOST_ACCESS_KEY"))
    p.add_argument("--hub-config", default=env("PUBSUBHOST_HUB_CONFIG"))
    p.add_argument(
        "--upstream",
        action="append",
        default=env("PUBSUBHOST_UPSTREAMS", "").split() or None,
        help="HUB=URL_TEMPLATE: that hub's event handler, for every event",
    )
    p.add_argument("--max-connections", type=int, default=Limits.max_connections)
    p.add_argument("--max-frame-bytes", type=int, default=Limits.max_frame_bytes)
    p.add_argument("--max-messages-per-second", type=float, default=Limits.max_messages_per_second)
    p.add_argument("--verbose", action="store_true", help="log at DEBUG")
    return p


async def serve(settings: Settings) -> None:
    """Serves until cancelled or SIGINT/SIGTERM."""
    service = PubSubService(settings)
    runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    print(f"Web PubSub stand-in on {settings.endpoint}", flush=True)
    for hub, hub_settings in sorted(settings.hubs.items()):
        for handler in hub_settings.event_handlers:
            print(f"  hub {hub}: events to {handler.url_template}", flush=True)
    print(f"ConnectionString: {settings.connection_string}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await service.shutdown()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["start"]:
        argv = argv[1:]
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[%(asctime)s] %(message)s",
        stream=sys.stdout,
    )
    try:
        settings = _settings(args)
    except ConfigError as error:
        print(f"pubsubhost: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings))
    except OSError as error:
        print(
            f"pubsubhost: cannot listen on {settings.host}:{settings.port}: {error}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0
