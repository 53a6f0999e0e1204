"""A twin rack of real BMC services, each on its own HTTPS port, and the RMC in front of them.

Runnable by hand to point Redfish tools at an RMC (prints its URL and CA bundle)::

    python -m tests.rmc.conftest /tmp/rmc-demo
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.bmc.login import BackoffPolicy
from racklet.hw import Activity, UnitHost
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.rmc import RMC_CLIENT_NAME, AggregationSource, RmcService, RmcSettings
from racklet.twin import RackDescription, SimClock, TwinRack

BMC_PASSWORD = "bmc-password-for-the-rmc"
ADMIN = ("admin", "rmc admin password")
OPERATOR = ("operator", "rmc operator password")
READER = ("reader", "rmc reader password")
UNITS = ("unit-1", "unit-2")
QUICK = BackoffPolicy(source_threshold=6, delay=60.0, max_delay=60.0, max_wait=0.0)
"""Failed-login back-off that never makes a test wait: after six failures a source gets one
more try a minute, and anything that would have to wait is refused at once (503)."""


async def idle_os(host: UnitHost) -> None:
    """Firmware that boots straight into an idle OS: enough for power tests."""
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Rack:
    rack: TwinRack
    rmc: RmcService
    url: str
    """The RMC's base URL."""
    ca: Path
    bmc_urls: dict[str, str]
    bmc_servers: dict[str, AppServer]

    def twin_fans_turning(self) -> bool:
        return all(fan.rpm() > 0 for fan in self.rack.rack_fans)

    def client(self, auth: tuple[str, str] | None = ADMIN) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, verify=client_context(self.ca), auth=auth)

    def bmc(self, unit: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.bmc_urls[unit],
            verify=client_context(self.ca),
            auth=("admin", BMC_PASSWORD),
        )


@pytest.fixture
async def rack(tmp_path: Path) -> AsyncIterator[Rack]:
    async with running_rack(tmp_path) as running:
        yield running


@contextlib.asynccontextmanager
async def running_rack(
    tmp_path: Path, rmc_options: dict[str, Any] | None = None, **bmc_options: Any
) -> AsyncIterator[Rack]:
    """Two twin units with their BMCs and the RMC in front of them, all on 127.0.0.1;
    ``bmc_options`` go to every BMC's :class:`BmcSettings` (an image verifier, say),
    ``rmc_options`` to the RMC's :class:`RmcSettings`."""
    ca = RackCA.create(tmp_path / "pki")
    twin = TwinRack(
        RackDescription(units=len(UNITS)),
        SimClock(speed=20),
        idle_os,
        storage_root=tmp_path / "units",
        agent_ports={},
    )
    services: list[BmcService] = []
    servers: list[AppServer] = []
    bmc_servers: dict[str, AppServer] = {}
    sources: list[AggregationSource] = []
    await twin.start()
    try:
        for unit in UNITS:
            bmc_dir = tmp_path / "bmc" / unit
            bmc_dir.mkdir(parents=True)
            key, crt = ca.issue(f"{unit}-bmc", role=f"bmc/{unit}").write(bmc_dir, "server")
            write_accounts(bmc_dir / "accounts.json", "admin", BMC_PASSWORD)
            service = BmcService(
                twin.board(unit),
                BmcSettings(
                    unit=unit,
                    state_dir=bmc_dir,
                    firmware_version="test",
                    login_backoff=QUICK,
                    # the unit's storage, where a pushed OS payload goes (as racklet up has it)
                    unit_storage=tmp_path / "units" / unit,
                    **bmc_options,
                ),
            )
            await service.start()
            services.append(service)
            port = free_port()
            server = AppServer(
                service.app,
                port=port,
                # Client certificates from the rack CA are a login (the RMC's, the controller's).
                ssl_context=server_context(crt, key, ca=tmp_path / "pki" / "ca.crt"),
                name=f"bmc:{unit}",
            )
            await server.start()
            servers.append(server)
            bmc_servers[unit] = server
            sources.append(AggregationSource(unit, f"https://127.0.0.1:{port}"))
        rmc_dir = tmp_path / "rmc"
        rmc_dir.mkdir()
        port = free_port()
        key, crt = ca.issue("rmc", role="rmc").write(rmc_dir, "server")
        login = ca.issue(RMC_CLIENT_NAME, role="rmc", server=False, client=True).write(
            rmc_dir, "client"
        )
        accounts = rmc_dir / "accounts.json"
        write_accounts(accounts, *ADMIN)
        write_accounts(accounts, *OPERATOR, role="Operator")
        write_accounts(accounts, *READER, role="ReadOnly")
        rmc = RmcService(
            RmcSettings(
                sources=sources,
                ca_bundle=tmp_path / "pki" / "ca.crt",
                accounts_file=accounts,
                client_cert=(login[1], login[0]),
                request_timeout=3.0,
                login_backoff=QUICK,
                board=twin.rack_board(),
                https_port=port,
                server_cert=crt,
                **(rmc_options or {}),
            )
        )
        await rmc.start()
        # Client certificates from the rack CA are a login (the controller's); a certificate
        # replaced through the RMC's CertificateService serves the next handshake.
        assert rmc.certificates is not None
        rmc_ctx = rmc.certificates.server_context(tmp_path / "pki" / "ca.crt")
        rmc_server = AppServer(rmc.app, port=port, ssl_context=rmc_ctx, name="rmc")
        await rmc_server.start()
        try:
            yield Rack(
                twin,
                rmc,
                f"https://127.0.0.1:{port}",
                tmp_path / "pki" / "ca.crt",
                {s.name: s.url for s in sources},
                bmc_servers,
            )
        finally:
            await rmc_server.stop()
            await rmc.stop()
    finally:
        for server in reversed(servers):
            await server.stop()
        for service in reversed(services):
            await service.stop()
        await twin.stop()


async def _main(root: Path) -> None:
    async with running_rack(root) as rack:
        print(rack.url, rack.ca, *ADMIN, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
