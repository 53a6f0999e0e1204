"""The real BMC service on a twin board, driven by standard Redfish clients.

Nothing here is faked but physics: the BMC reads the unit's power through the PAC1921 driver
over the twin's I2C bus and switches the unit's DC/DC through the HAL, exactly as on a board.
The BMC is the one the conformance tests use (``tests.bmc.twin_bench``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import sushy

from racklet.net import client_context
from tests.bmc.twin_bench import ADMIN, UNIT, TwinBmc, running_twin_bmc


@pytest.fixture
async def twin_bmc(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


async def _eventually(check: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_sushy_powers_a_twin_unit_on_and_off(twin_bmc: TwinBmc) -> None:
    unit = twin_bmc.rack.unit(UNIT)
    auth = sushy.auth.SessionOrBasicAuth(username=ADMIN[0], password=ADMIN[1])
    root = await asyncio.to_thread(
        sushy.Sushy, twin_bmc.url + "/redfish/v1", auth=auth, verify=str(twin_bmc.ca)
    )
    try:
        system = await asyncio.to_thread(root.get_system, f"/redfish/v1/Systems/{UNIT}")
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
    finally:
        # sushy logs out in __del__; do it now, while the BMC still answers.
        await asyncio.to_thread(auth.close)


async def test_bmc_power_reading_comes_through_the_pac1921(twin_bmc: TwinBmc) -> None:
    unit = twin_bmc.rack.unit(UNIT)
    unit.power_on()
    await _eventually(lambda: unit.power_watts > 2.0, "the unit to draw power")
    async with httpx.AsyncClient(verify=client_context(twin_bmc.ca), auth=ADMIN) as client:
        url = f"{twin_bmc.url}/redfish/v1/Chassis/{UNIT}/EnvironmentMetrics"

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


async def test_controller_logs_in_with_its_certificate_not_a_password(
    twin_bmc: TwinBmc, tmp_path: Path
) -> None:
    from racklet.redfish import RedfishClient

    key, crt = twin_bmc.pki.issue(
        "racklet-controller", role="controller", server=False, client=True
    ).write(tmp_path, "controller")
    client = RedfishClient(
        twin_bmc.url, "admin", "not-the-password", ca_bundle=twin_bmc.ca, client_cert=(crt, key)
    )
    try:
        await client.reset(UNIT, "On")  # an Operator action, authorised by the certificate
        assert (await client.system(UNIT)).power_state in ("On", "PoweringOn")
    finally:
        await client.aclose()

    # A certificate the BMC maps to no role falls back to a session with the password.
    key, crt = twin_bmc.pki.issue("someone-else", server=False, client=True).write(
        tmp_path, "stranger"
    )
    fallback = RedfishClient(
        twin_bmc.url, ADMIN[0], ADMIN[1], ca_bundle=twin_bmc.ca, client_cert=(crt, key)
    )
    try:
        assert (await fallback.system(UNIT)).power_state in ("On", "PoweringOn")
    finally:
        await fallback.aclose()
