"""One Racklet BMC in its own process, served the way the twin process serves it.

A twin rack of one unit, the real :class:`racklet.bmc.BmcService` on its board, and
:class:`racklet.net.AppServer` with the BMC's rack-CA certificate — the same three calls as
``racklet.hardware_side._process.run``. Prints ``ready`` once it listens; stops on SIGTERM.

Run as ``python -m bench._bmc_target --dir D --port P`` where ``D`` holds ``server.crt``,
``server.key`` and ``accounts.json`` (the bench prepares them); ``--crl PATH`` serves with
the twin's CRL-following context instead of a fixed one (before/after in one run).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from racklet import log
from racklet.bmc import BmcService, BmcSettings
from racklet.hw import Activity, UnitHost
from racklet.net import AppServer, live_server_context, run_loop, server_context, spiffe_id
from racklet.twin import RackDescription, SimClock, TwinRack

UNIT = "unit-1"


async def _idle_os(host: UnitHost) -> None:
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


async def _serve(directory: Path, port: int, crl: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    rack = TwinRack(
        RackDescription(units=1),
        SimClock(speed=1),
        _idle_os,
        storage_root=directory / "units",
        agent_ports={},
    )
    await rack.start()
    service = BmcService(
        rack.board(UNIT),
        BmcSettings(
            unit=UNIT,
            state_dir=directory,
            firmware_version="racklet-bmc bench",
            cert_roles={spiffe_id("bench", "controller"): "Operator"},
        ),
    )
    await service.start()
    cert, key = directory / "server.crt", directory / "server.key"
    # With a CRL: the twin's context (client certificates from the rack CA as a login,
    # checked against the CRL as it changes); without: a fixed server-only one, as before.
    context = (
        server_context(cert, key)
        if crl is None
        else live_server_context(
            cert, key, ca=crl.parent / "ca.crt", crl=crl, require_client_cert=False
        )
    )
    server = AppServer(service.app, port=port, ssl_context=context, name=f"bmc:{UNIT}")
    try:
        await server.start()
        print("ready", flush=True)
        await stop.wait()
    finally:
        await server.stop()
        await service.stop()
        await rack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._bmc_target")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--asyncio", action="store_true", help="stock asyncio loop, not uvloop")
    parser.add_argument("--crl", type=Path, help="follow this CRL (beside the rack's ca.crt)")
    args = parser.parse_args(argv)
    log.configure()
    run_loop(_serve(args.dir, args.port, args.crl), uvloop=not args.asyncio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
