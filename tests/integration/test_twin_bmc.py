"""The real BMC service on a twin board, driven by standard Redfish clients.

Nothing here is faked but physics: the BMC reads the unit's power through the PAC1921 driver
over the twin's I2C bus and switches the unit's DC/DC through the HAL, exactly as on a board.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sushy

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.hw import Activity, UnitHost
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.twin import RackDescription, SimClock, TwinRack

PASSWORD = "twin-bmc-test-password"


async def idle_os(host: UnitHost) -> None:
    """Firmware that boots straight into an idle OS: enough for power tests."""
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


@dataclass
class TwinBmc:
    rack: TwinRack
    url: str
    ca: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def twin_bmc(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    ca = RackCA.create(tmp_path / "pki")
    bmc_dir = tmp_path / "bmc"
    bmc_dir.mkdir()
    key, crt = ca.issue("unit-1-bmc").write(bmc_dir, "server")
    write_accounts(bmc_dir / "accounts.json", "admin", PASSWORD)
    rack = TwinRack(
        RackDescription(units=2),
        SimClock(speed=20),
        idle_os,
        storage_root=tmp_path / "units",
        agent_ports={},
    )
    await rack.start()
    service = BmcService(
        rack.board("unit-1"),
        BmcSettings(unit="unit-1", state_dir=bmc_dir, firmware_version="test", sample_period=0.2),
    )
    await service.start()
    port = _free_port()
    server = AppServer(
        service.app, port=port, ssl_context=server_context(crt, key), name="bmc:unit-1"
    )
    await server.start()
    try:
        yield TwinBmc(rack, f"https://127.0.0.1:{port}", tmp_path / "pki" / "ca.crt")
    finally:
        await server.stop()
        await service.stop()
        await rack.stop()


async def _eventually(check: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_sushy_powers_a_twin_unit_on_and_off(twin_bmc: TwinBmc) -> None:
    unit = twin_bmc.rack.unit("unit-1")

    def connect() -> sushy.Sushy:
        return sushy.Sushy(
            twin_bmc.url + "/redfish/v1",
            username="admin",
            password=PASSWORD,
            verify=str(twin_bmc.ca),
        )

    root = await asyncio.to_thread(connect)
    system = await asyncio.to_thread(root.get_system, "/redfish/v1/Systems/unit-1")
    assert system.power_state == sushy.POWER_STATE_OFF
    assert unit.power_watts == 0.0

    await asyncio.to_thread(system.reset_system, sushy.RESET_ON)
    await _eventually(lambda: unit.power_watts > 2.0, "the unit to draw power")
    await asyncio.to_thread(system.refresh)
    assert system.power_state == sushy.POWER_STATE_ON

    await asyncio.to_thread(system.reset_system, sushy.RESET_FORCE_OFF)
    await _eventually(lambda: unit.power_watts == 0.0, "the unit to go dark")
    await asyncio.to_thread(system.refresh)
    assert system.power_state == sushy.POWER_STATE_OFF
    assert twin_bmc.rack.unit("unit-2").power_watts == 0.0, "only the addressed unit moved"
    # sushy logs out in __del__; do it now, while the BMC still answers, not in a later test.
    await asyncio.to_thread(root.__del__)


async def test_bmc_power_reading_comes_through_the_pac1921(twin_bmc: TwinBmc) -> None:
    unit = twin_bmc.rack.unit("unit-1")
    unit.power_on()
    await _eventually(lambda: unit.power_watts > 2.0, "the unit to draw power")
    auth = ("admin", PASSWORD)
    async with httpx.AsyncClient(verify=client_context(twin_bmc.ca), auth=auth) as client:
        url = twin_bmc.url + "/redfish/v1/Chassis/unit-1/EnvironmentMetrics"

        async def reading() -> float:
            body = (await client.get(url)).json()
            return float(body["PowerWatts"]["Reading"] or 0.0)

        deadline = time.monotonic() + 20
        watts = await reading()
        while abs(watts - unit.power_watts) > 0.1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            watts = await reading()
    # Within the PAC1921's quantisation at the board's gain (tens of milliwatts).
    assert watts == pytest.approx(unit.power_watts, abs=0.1)
