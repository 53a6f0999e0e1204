"""``python -m racklet.rmc --state-dir D --port P``: serve the RMC for a running rack.

Reads the rack's ``racklet.yaml``, prepares ``<state-dir>/rmc/`` once (identity from the rack
CA, an ``admin`` account whose password is in ``rmc/admin.password``), and serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from racklet import config as rack_config
from racklet import log
from racklet.errors import RackletError
from racklet.net import run_loop
from racklet.pki import RackCA
from racklet.rmc._setup import RMC_USER, prepare_rmc, rmc_dir, serve_rmc


async def _serve(config: rack_config.RackConfig, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    directory = rmc_dir(config)
    ca = await asyncio.to_thread(RackCA.load, config.layout.pki)
    await asyncio.to_thread(prepare_rmc, directory, ca)
    running = await serve_rmc(config, port=port)
    print(
        f"RMC for {len(config.units)} BMCs at {running.url}/redfish/v1 "
        f"(user {RMC_USER}, password in {directory / 'admin.password'})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await running.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m racklet.rmc")
    parser.add_argument("--state-dir", type=Path, default=rack_config.DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=8450)
    args = parser.parse_args(argv)
    log.configure()
    try:
        config = rack_config.load(args.state_dir / rack_config.CONFIG_NAME)
        run_loop(_serve(config, args.port))
    except (RackletError, OSError) as exc:
        print(f"racklet rmc: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
