"""A large twin serves all its BMCs from one process: 256 Redfish services, one event loop."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import httpx

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.twin import RackDescription, SimClock, TwinRack
from tests.bmc.twin_bench import idle_os

UNITS = 256
ADMIN = ("admin", "many-bmcs-password")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def test_one_process_serves_256_bmcs(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path / "pki")
    key, crt = ca.issue("bmc").write(tmp_path, "server")  # one certificate, as a row's RMC might
    rack = TwinRack(
        RackDescription(units=UNITS, psu_rated_watts=2000.0),
        SimClock(speed=10),
        idle_os,
        storage_root=tmp_path / "units",
    )
    accounts = tmp_path / "accounts.json"
    write_accounts(accounts, *ADMIN)  # hashed once (scrypt is slow on purpose), copied to each
    services: list[BmcService] = []
    servers: list[AppServer] = []
    await rack.start()
    try:
        for name, port in zip(rack.units, _free_ports(UNITS), strict=True):
            state = tmp_path / "bmc" / name
            state.mkdir(parents=True)
            shutil.copy2(accounts, state / "accounts.json")
            service = BmcService(
                rack.board(name), BmcSettings(unit=name, state_dir=state, firmware_version="t")
            )
            await service.start()
            services.append(service)
            server = AppServer(
                service.app, port=port, ssl_context=server_context(crt, key), name=name
            )
            await server.start()
            servers.append(server)

        verify = client_context(tmp_path / "pki" / "ca.crt")
        limits = httpx.Limits(max_connections=32)
        timeout = httpx.Timeout(30.0, pool=None)  # 256 requests queue for 32 connections
        async with httpx.AsyncClient(
            verify=verify, auth=ADMIN, limits=limits, timeout=timeout
        ) as client:

            async def power_state(name: str, server: AppServer) -> str:
                url = f"https://127.0.0.1:{server.port}/redfish/v1/Systems/{name}"
                response = await client.get(url)
                assert response.status_code == 200, (name, response.text)
                return str(response.json()["PowerState"])

            rack.unit("unit-177").power_on()
            states = await asyncio.gather(
                *(
                    power_state(name, server)
                    for name, server in zip(rack.units, servers, strict=True)
                )
            )
        assert len(states) == UNITS
        assert states[176] == "On"
        assert states.count("Off") == UNITS - 1
    finally:
        for server in servers:
            await server.stop()
        for service in services:
            await service.stop()
        await rack.stop()
