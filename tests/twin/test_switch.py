"""The switch: carrier follows power and the port's admin state; no carrier, no network."""

from __future__ import annotations

import asyncio
from pathlib import Path

from racklet.hw import Activity, UnitHost
from racklet.twin import RackDescription, SimClock, TwinRack


async def _idle(host: UnitHost) -> None:
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


async def test_carrier_follows_power_and_port_state(tmp_path: Path) -> None:
    rack = TwinRack(RackDescription(units=2), SimClock(speed=50), _idle, storage_root=tmp_path)
    unit = rack.unit("unit-1")
    assert not unit.link_up(), "an unpowered unit has no link"
    unit.power_on()
    assert unit.link_up()
    rack.switch.set_enabled(1, False)  # a partition
    assert not unit.link_up()
    assert rack.unit("unit-2").port is rack.switch.ports[2]
    rack.switch.set_enabled(1, True)
    assert unit.link_up()
    unit.power_off()
    assert not unit.link_up()
    assert rack.switch.ports[1].link_changes == 4
    await rack.stop()
