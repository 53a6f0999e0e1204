"""``python -m racklet.controller --state-dir D``: the management side of one rack.

Loads ``D/racklet.yaml``, opens the store (``rack.store``: ``sqlite`` in the state dir, or
``etcd://HOST:PORT`` / ``etcds://HOST:PORT`` shared with other controllers), declares the rack
and its units (creating only what is missing, so user changes survive restarts), and runs the
reconcilers, the API listener (server TLS, bearer token) and the machine listener (mutual TLS:
heartbeats and the boot server) until SIGTERM or SIGINT, then stops everything and exits 0.
On etcd it campaigns for the lead: every controller serves the API, only the leader runs the
reconcilers, through a fenced store view. A bad config or a port that cannot be bound is one
line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from racklet import config as rack_config
from racklet.controller._process import Controller
from racklet.errors import RackletError
from racklet.log import configure, get_logger
from racklet.net import run_loop

log = get_logger("controller")


async def run(
    config: rack_config.RackConfig, stop: asyncio.Event, *, audit_dir: Path | None = None
) -> None:
    """Run the controller's services (:class:`Controller`) until ``stop`` is set.

    ``audit_dir``: where this controller keeps its audit.log (default ``controller/``; the
    peers of an HA rack each keep theirs in their own ``controller-N/``)."""
    async with Controller(config, audit_dir=audit_dir):
        await stop.wait()
        log.info("stopping")


async def _main(state_dir: Path) -> None:
    config = rack_config.load(state_dir / rack_config.CONFIG_NAME)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    own_dir = not await asyncio.to_thread(os.path.samefile, state_dir, config.layout.root)
    await run(config, stop, audit_dir=state_dir if own_dir else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m racklet.controller")
    parser.add_argument("--state-dir", required=True, type=Path, help="the rack's state dir")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure(args.log_level)
    try:
        run_loop(_main(args.state_dir))
    except (RackletError, OSError) as exc:
        print(f"racklet controller: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # uvicorn exits when a listener fails to start
        if exc.code in (0, None):
            return 0
        print("racklet controller: a listener failed to start (see above)", file=sys.stderr)
        return 1
    return 0
