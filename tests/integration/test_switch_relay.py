"""A rack whose traffic crosses the twin's switch: a port down cuts real connections.

The management side is the real controller process; the hardware side is the real twin
process's ``run`` in this test's loop, so the test holds the switch as the fault engine will.
Units boot for real (bootstrap over mutual TLS through their switch ports, then the OS agent).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from racklet.cli._prepare import prepare
from racklet.config import RackConfig
from racklet.hardware_side._process import run
from racklet.net import client_context
from racklet.twin._rack import TwinRack

WAIT_SECONDS = 90.0


@dataclass
class Rig:
    config: RackConfig
    rack: TwinRack
    api: httpx.AsyncClient

    async def phase(self, unit: str) -> str | None:
        response = await self.api.get(f"/api/v1/computeunits/{unit}")
        response.raise_for_status()
        return (response.json().get("status") or {}).get("phase")

    async def until(self, check: Callable[[], object], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    async def agent_metrics(self, unit: str) -> dict[str, float]:
        port = self.config.unit(unit).agent_port
        ca = client_context(self.config.layout.ca_cert)
        async with httpx.AsyncClient(verify=ca) as client:
            text = (await client.get(f"https://127.0.0.1:{port}/metrics")).text
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = prepare(
        tmp_path / "rack",
        units=2,
        speed=10.0,
        profile="raspberry-pi-4",
        psu_rated_watts=100.0,
        payload_bytes=65536,
    )
    controller = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "racklet.controller", "--state-dir", config.state_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


async def _running(rig: Rig, unit: str) -> bool:
    try:
        return await rig.phase(unit) == "Running"
    except httpx.HTTPError:
        return False


async def test_a_port_down_cuts_live_tls_and_the_unit_returns_without_a_reboot(rig: Rig) -> None:
    await rig.until(lambda: _running(rig, "unit-1"), "unit-1 Running")
    await rig.until(lambda: _running(rig, "unit-2"), "unit-2 Running")
    port = rig.rack.switch.port("unit-1")
    await rig.until(lambda: port.connections >= 1, "unit-1's heartbeat connection on its port")

    # Latency on the unit's port shows in the heartbeat round trip the agent measures.
    port.set_properties(latency_ms=150.0)

    async def slow_round_trip() -> bool:
        metrics = await rig.agent_metrics("unit-1")
        return metrics.get("racklet_node_heartbeat_round_trip_seconds", 0.0) >= 0.3

    await rig.until(slow_round_trip, "a heartbeat round trip of at least 2 x 150 ms")
    port.reset()

    before = (await rig.agent_metrics("unit-1"))["racklet_node_uptime_seconds"]
    port.set_link(False)
    assert port.connections == 0, "the unit's live TLS connections are cut at the relay"
    await rig.until(
        lambda: _phase_is(rig, "unit-1", "Unreachable"), "unit-1 Unreachable after the cut"
    )
    assert await rig.phase("unit-2") == "Running", "the other unit's port carries on"

    port.set_link(True)
    await rig.until(lambda: _running(rig, "unit-1"), "unit-1 Running again")
    after = (await rig.agent_metrics("unit-1"))["racklet_node_uptime_seconds"]
    assert after > before, "the OS kept running through the partition: no reboot"


async def _phase_is(rig: Rig, unit: str, phase: str) -> bool:
    return await rig.phase(unit) == phase
