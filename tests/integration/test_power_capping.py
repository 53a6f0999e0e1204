"""Power capping on a real rack: a brown-out below the running draw caps the lowest
``powerPriority`` first through each unit's BMC, sheds only when floors cannot fit, never lets
the busbar's true draw above the reduced rating, and restores every unit when it clears.

The rack is the real thing on the twin: the controller process, the hardware side's BMCs,
RMC, switch and OS agents; the test drives it only through the API (stress jobs, priorities,
``BrownOut`` Faults) and reads the twin's ground truth (``TwinRack.busbar.samples``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.cli._prepare import prepare
from racklet.config import RackConfig
from racklet.hardware_side._process import run
from racklet.net import client_context
from racklet.twin._rack import TwinRack

WAIT_SECONDS = 120.0
PRIORITIES = {"unit-1": 300, "unit-2": 200, "unit-3": 100}


@dataclass
class Rig:
    config: RackConfig
    rack: TwinRack
    api: httpx.AsyncClient

    async def until(self, check: Any, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    async def units(self) -> dict[str, dict[str, Any]]:
        response = await self.api.get("/api/v1/computeunits")
        response.raise_for_status()
        return {item["metadata"]["name"]: item for item in response.json()["items"]}

    async def events(self, name: str, reason: str) -> list[dict[str, Any]]:
        response = await self.api.get("/api/v1/events", params={"name": name, "limit": "200"})
        response.raise_for_status()
        body = response.json()
        items = body.get("items", []) if isinstance(body, dict) else body
        return [e for e in items if e.get("reason") == reason]

    async def fault(self, name: str, watts: float) -> None:
        body = {
            "apiVersion": "racklet.dev/v1alpha1",
            "kind": "Fault",
            "metadata": {"name": name},
            "spec": {"type": "BrownOut", "params": {"watts": watts}},
        }
        (await self.api.post("/api/v1/faults", json=body)).raise_for_status()

        async def active() -> bool:
            reply = await self.api.get(f"/api/v1/faults/{name}")
            return bool(reply.json().get("status", {}).get("phase") == "Active")

        await self.until(active, f"fault {name} to be active")

    async def clear(self, name: str) -> None:
        reply = await self.api.patch(f"/api/v1/faults/{name}", json={"spec": {"cleared": True}})
        reply.raise_for_status()

    async def stress(self) -> None:
        for name in PRIORITIES:
            reply = await self.api.post(
                f"/api/v1/computeunits/{name}/stress",
                json={"cpuPercent": 100, "seconds": 3600},
            )
            reply.raise_for_status()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = prepare(
        tmp_path / "rack",
        units=3,
        speed=10.0,
        profile="raspberry-pi-4",
        psu_rated_watts=100.0,
        payload_bytes=65536,
    )
    log = (tmp_path / "controller.log").open("wb")  # read it when this test fails
    controller = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "racklet.controller", "--state-dir", config.state_dir),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    stop = asyncio.Event()
    racks: list[TwinRack] = []
    twin = asyncio.create_task(run(config, stop, ready=racks.append))
    api = httpx.AsyncClient(
        base_url=config.api.url,
        verify=client_context(config.layout.ca_cert),
        headers={"Authorization": f"Bearer {config.api.token}"},
    )
    try:
        while not racks:
            assert not twin.done(), "the twin process's run() ended early"
            await asyncio.sleep(0.05)
        yield Rig(config, racks[0], api)
    finally:
        await api.aclose()
        stop.set()
        await twin
        controller.terminate()
        await asyncio.wait_for(controller.wait(), 30)
        log.close()


def _over(rack: TwinRack, since: float) -> list[tuple[float, float, float]]:
    """Every ground-truth busbar sample since ``since`` whose draw stood above its rating."""
    return [s for s in rack.busbar.samples if s[0] >= since and s[1] > s[2] + 1e-9]


async def test_a_brown_out_caps_then_sheds_by_priority_within_the_rating_and_restores(
    rig: Rig,
) -> None:
    async def all_running() -> bool:
        try:
            units = await rig.units()
        except httpx.HTTPError:
            return False
        return len(units) == 3 and all(
            (u.get("status") or {}).get("phase") == "Running" for u in units.values()
        )

    await rig.until(all_running, "three running units")
    for name, priority in PRIORITIES.items():
        reply = await rig.api.patch(
            f"/api/v1/computeunits/{name}", json={"spec": {"powerPriority": priority}}
        )
        reply.raise_for_status()
    await rig.stress()
    twin = rig.rack
    await rig.until(lambda: twin.busbar.power_watts > 17.0, "three busy units (~19 W)")
    brownouts = twin.busbar.brownouts
    units = twin.units

    # 1. A brown-out to 16 W (14.4 W after the guard band): the floors fit, so units are
    #    capped, lowest priority first; unit-1 keeps its full power.
    began = twin.busbar.elapsed
    await rig.fault("sag-16", 16.0)
    await rig.until(lambda: units["unit-3"].power_limit_watts is not None, "unit-3 capped")
    await rig.until(
        lambda: (
            units["unit-2"].power_limit_watts is not None
            and not any(u.under_voltage for u in units.values())
        ),
        "unit-2 capped too, and the caps ending the sag",
    )
    assert units["unit-1"].power_limit_watts is None, "the highest priority keeps full power"
    assert units["unit-3"].power_limit_watts == pytest.approx(units["unit-3"].floor_watts, abs=0.01)
    assert all(u.powered for u in units.values()), "nothing shed while capping fits"
    await rig.until(lambda: rig.events("unit-3", "Capped"), "unit-3's Capped event")
    capped = await rig.events("unit-3", "Capped")
    assert "brown-out 'sag-16'" in capped[-1]["message"]
    assert "power priority 100" in capped[-1]["message"]
    assert not _over(twin, began), "the busbar's true draw stayed within 16 W"
    assert twin.busbar.brownouts == brownouts

    await rig.clear("sag-16")
    await rig.until(
        lambda: all(u.power_limit_watts is None for u in units.values()), "every cap lifted"
    )
    await rig.until(lambda: rig.events("unit-3", "Uncapped"), "unit-3's Uncapped event")
    await rig.until(lambda: twin.busbar.power_watts > 17.0, "full power again")

    # 2. A brown-out to 12.2 W: three floors (~11.4 W) fit the PSU but not the guard band, so
    #    unit-3 (priority 100) is shed and the others capped; all comes back when it clears.
    began = twin.busbar.elapsed
    await rig.fault("sag-12", 12.2)
    await rig.until(lambda: not units["unit-3"].powered, "unit-3 shed")
    await rig.until(lambda: rig.events("unit-3", "Shed"), "unit-3's Shed event")
    shed = await rig.events("unit-3", "Shed")
    assert "brown-out 'sag-12'" in shed[-1]["message"], shed
    assert units["unit-1"].powered and units["unit-2"].powered
    assert not _over(twin, began), "the busbar's true draw stayed within 12.2 W"
    assert twin.busbar.brownouts == brownouts

    await rig.clear("sag-12")
    await rig.until(lambda: units["unit-3"].powered, "unit-3 powered on again")
    await rig.until(
        lambda: all(u.power_limit_watts is None for u in units.values()), "every cap lifted"
    )
    await rig.until(all_running, "three running units again")
    assert twin.busbar.brownouts == brownouts, "never a brown-out"
