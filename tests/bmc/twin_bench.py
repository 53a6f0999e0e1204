"""One real BMC service on a twin board, over HTTPS with a rack-CA certificate.

Used by the conformance and real-client tests, and runnable by hand to poke at a BMC::

    python -m tests.bmc.twin_bench /tmp/bmc-demo
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.hw import Activity, UnitHost
from racklet.net import AppServer, server_context
from racklet.pki import RackCA
from racklet.twin import RackDescription, SimClock, TwinRack

UNIT = "unit-1"
ADMIN = ("admin", "twin-admin-password")
OPERATOR = ("operator", "twin-operator-password")
READER = ("reader", "twin-reader-password")


async def idle_os(host: UnitHost) -> None:
    """Firmware that prints a line and idles: enough for conformance and power tests."""
    host.console("racklet: booted into an idle OS")
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


@dataclass
class TwinBmc:
    rack: TwinRack
    service: BmcService
    url: str
    ca: Path
    state_dir: Path
    pki: RackCA


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_twin_bmc(
    root: Path, speed: float = 20.0, **settings: Any
) -> AsyncIterator[TwinBmc]:
    """``settings`` go to the BMC's :class:`BmcSettings`."""
    ca = RackCA.create(root / "pki")
    bmc_dir = root / "bmc"
    bmc_dir.mkdir(parents=True)
    key, crt = ca.issue(f"{UNIT}-bmc", role=f"bmc/{UNIT}").write(bmc_dir, "server")
    ca.issue(UNIT, role=f"unit/{UNIT}", server=True, client=True).write(bmc_dir, "identity")
    for name, password, role in (
        (*ADMIN, "Administrator"),
        (*OPERATOR, "Operator"),
        (*READER, "ReadOnly"),
    ):
        write_accounts(bmc_dir / "accounts.json", name, password, role)
    rack = TwinRack(
        RackDescription(units=2),
        SimClock(speed=speed),
        idle_os,
        storage_root=root / "units",
        agent_ports={},
    )
    await rack.start()
    service = BmcService(
        rack.board(UNIT),
        BmcSettings(
            unit=UNIT,
            state_dir=bmc_dir,
            firmware_version="racklet-bmc test",
            # its unit's storage, where a pushed OS payload goes (as racklet up has it)
            **{
                "ca_bundle": root / "pki" / "ca.crt",
                "unit_storage": root / "units" / UNIT,
                **settings,
            },
        ),
    )
    await service.start()
    port = _free_port()
    server = AppServer(
        service.app,
        port=port,
        ssl_context=server_context(crt, key, ca=root / "pki" / "ca.crt"),
        name=f"bmc:{UNIT}",
    )
    try:
        await server.start()
        yield TwinBmc(
            rack, service, f"https://127.0.0.1:{port}", root / "pki" / "ca.crt", bmc_dir, ca
        )
    finally:
        await server.stop()
        await service.stop()
        await rack.stop()


async def _main(root: Path) -> None:
    async with running_twin_bmc(root) as bmc:
        print(bmc.url, bmc.ca, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
