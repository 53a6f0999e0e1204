"""The hardware-side process of ``racklet up``: the twin, one BMC per unit, their listeners.

Each BMC is the real ``racklet.bmc`` service on a twin board, served over HTTPS with its
rack-CA certificate on its own port, exactly as a real BMC host would serve it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from racklet import config as rack_config
from racklet import log
from racklet.bmc import BmcHost, BmcSettings, TufImageVerifier
from racklet.errors import RackletError
from racklet.hardware_side._firmware import unit_firmware
from racklet.net import AppServer, ca_trust_domain, live_server_context, run_loop, spiffe_id
from racklet.pki import CRL_NAME
from racklet.rmc import RunningRmc, serve_rmc
from racklet.twin import SimClock
from racklet.twin._control import ControlApp, new_board_wiper
from racklet.twin._faults import FaultEngine
from racklet.twin._rack import RackDescription, TwinRack

BMC_FIRMWARE_VERSION = "0.1.0"
"""The factory firmware in slot A of every twin BMC (a release on ``bmc-firmware`` replaces it)."""


async def run(
    config: rack_config.RackConfig,
    stop: asyncio.Event,
    ready: Callable[[TwinRack], None] | None = None,
) -> None:
    """Serve the rack until ``stop``; ``ready`` gets the running twin (a test's hands on it)."""
    logger = log.get_logger("twin")
    layout = config.layout
    clock = SimClock(config.rack.speed)
    description = RackDescription(
        name=config.rack.name,
        units=config.rack.units,
        profile=config.rack.profile,
        psu_rated_watts=config.rack.psu_rated_watts,
    )
    if config.switch is not None:
        description = description.model_copy(
            update={
                "port_bandwidth_bps": config.switch.port_bandwidth_bps,
                "uplink_bandwidth_bps": config.switch.uplink_bandwidth_bps,
            }
        )
    rack = TwinRack(
        description,
        clock,
        # The OS agents follow the rack's CRL, read from the shared state dir like the BMCs'.
        functools.partial(unit_firmware, crl=layout.pki / CRL_NAME),
        storage_root=layout.root / "units",
        agent_ports={unit.name: unit.agent_port for unit in config.units},
    )
    hosts: list[BmcHost] = []
    rmc: RunningRmc | None = None
    domain = ca_trust_domain(layout.ca_cert.read_bytes())
    control: AppServer | None = None
    engine: FaultEngine | None = None
    try:
        await rack.start()
        # The switch relays every unit's and BMC's connections to and from the management side.
        await rack.switch.serve(rack.switch.routes(config))
        for unit in config.units:
            bmc_dir = layout.bmc(unit.name)
            host = BmcHost(  # a BMC restart really stops and restarts its listener and service
                rack.board(unit.name),
                BmcSettings(
                    unit=unit.name,
                    state_dir=bmc_dir,
                    firmware_version=BMC_FIRMWARE_VERSION,
                    image_verifier=TufImageVerifier(bmc_dir),
                    # A pushed OS payload goes where the unit's bootstrap keeps its slots.
                    unit_storage=rack.storage_root / unit.name,
                    # A board's BMC is configured with the halted draw of the unit it carries.
                    halted_watts=rack.unit(unit.name).profile.halted_watts + 0.3,
                    cert_roles={
                        spiffe_id(domain, "controller"): "RackController",
                        spiffe_id(domain, "rmc"): "Operator",
                    },
                    ca_bundle=layout.ca_cert,  # event subscribers' certificates chain to it
                ),
                # Behind its switch port when the rack has a relaying switch.
                port=unit.bmc_port or urlsplit(unit.bmc.url).port or 443,
                # Client certificates from the rack CA are a login method (the controller's),
                # checked against the rack's CRL as it changes (docs/security.md).
                ssl_context=functools.partial(
                    live_server_context,
                    bmc_dir / "server.crt",
                    bmc_dir / "server.key",
                    ca=layout.ca_cert,
                    crl=layout.pki / CRL_NAME,
                    require_client_cert=False,
                ),
            )
            await host.start()
            hosts.append(host)
        if config.rmc is not None:
            rmc = await serve_rmc(
                config, port=urlsplit(config.rmc.url).port or 443, board=rack.rack_board()
            )
        if config.control is not None:
            engine, control = await _serve_control(config, rack, hosts)
        logger.info(f"twin of {config.rack.units} units running at speed {config.rack.speed}")
        if ready is not None:
            ready(rack)
        await stop.wait()
    finally:
        if control is not None:
            await control.stop()
        if engine is not None:
            await engine.clear_all()  # a stopped rack keeps no fault (its files are restored)
        if rmc is not None:
            await rmc.stop()
        for host in hosts:
            host.close_streams()  # open SSE streams would hold the servers' shutdown
        for host in reversed(hosts):
            await host.stop()
        await rack.stop()
        logger.info("twin stopped")


async def _serve_control(
    config: rack_config.RackConfig, rack: TwinRack, hosts: list[BmcHost]
) -> tuple[FaultEngine, AppServer]:
    """The fault engine over this rack and its BMC hosts, behind the control endpoint."""
    assert config.control is not None
    layout = config.layout
    by_unit = {unit.name: host for unit, host in zip(config.units, hosts, strict=True)}
    bmc_dirs = {unit.name: layout.bmc(unit.name) for unit in config.units}
    engine = FaultEngine(rack, by_unit, bmc_dirs=bmc_dirs)
    domain = ca_trust_domain(layout.ca_cert.read_bytes())
    app = ControlApp(
        engine,
        new_board=new_board_wiper(bmc_dirs, by_unit),
        identity=spiffe_id(domain, "controller"),
    )
    twin_dir = layout.root / "twin"
    server = AppServer(
        app.app,
        port=urlsplit(config.control.url).port or 443,
        # Mutual TLS that follows the rack's CRL: a revoked controller identity is refused.
        ssl_context=live_server_context(
            twin_dir / "server.crt",
            twin_dir / "server.key",
            ca=layout.ca_cert,
            crl=layout.pki / CRL_NAME,
        ),
        name="twin:control",
    )
    await server.start()
    return engine, server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m racklet.hardware_side")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    log.configure()
    try:
        config = rack_config.load(args.state_dir / rack_config.CONFIG_NAME)
    except RackletError as exc:
        print(f"racklet twin: error: {exc}", file=sys.stderr)
        return 1

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(config, stop)

    try:
        run_loop(serve())
    except (RackletError, OSError) as exc:
        print(f"racklet twin: error: {exc}", file=sys.stderr)
        return 1
    return 0
