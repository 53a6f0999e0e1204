"""The rack's energy from the busbar meter against the twin's ground truth, over a long run.

Two simulated hours on a manual clock: five units with load steps, a power cycle and a
hot-swap, the rack fans under the RMC's own cooling control (so their draw changes too). The
RMC's integrals of its two PAC1921s' samples (one a simulated second) must stay within 0.5 %
of the energy the twin really delivered: through the busbar (units and fans) and to the fans.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import cast

from racklet.bmc.login import EventBus
from racklet.log import get_logger
from racklet.rmc._rack import RackMonitor
from racklet.twin import RackDescription, SimClock, TwinRack
from tests.bmc.conftest import ManualClock
from tests.rmc.conftest import idle_os

TICK = 0.1  # the twin's physics step, as in a running rack
HOURS = 2


async def test_rack_and_fan_energy_within_half_a_percent_of_the_truth(tmp_path: Path) -> None:
    clock = ManualClock()
    rack = TwinRack(
        RackDescription(units=5), cast(SimClock, clock), idle_os, storage_root=tmp_path / "u"
    )
    monitor = RackMonitor(rack.rack_board(), tmp_path / "rmc", EventBus(), get_logger("test"))
    rng = random.Random(12)
    units = list(rack.units.values())
    for unit in units:
        unit.power_on()
    await asyncio.sleep(0)
    try:
        monitor.sample()
        start_truth, start_fans = rack.busbar.energy_joules, rack.fan_energy_joules
        for second in range(HOURS * 3600):
            if second % 600 == 0:  # a load step every ten minutes
                for unit in units:
                    unit.set_load(rng.choice([0.0, 0.25, 0.5, 1.0]))
            if second == 1800:
                units[1].power_off()
            if second == 1900:
                units[1].power_on()
            if second == 4000:
                rack.pull("unit-4")
            if second == 4600:
                rack.insert("unit-4")
                rack.unit("unit-4").power_on()
            monitor.cooling.step()
            for _ in range(round(1 / TICK)):
                rack.step(TICK)
                clock.advance(TICK)
            await asyncio.sleep(0)  # firmware of a unit powered on gets to run
            monitor.sample()
        truth = rack.busbar.energy_joules - start_truth
        measured = monitor.energy_joules
        assert truth > 5 * 3600 * 2.0, "the run really drew power"
        assert abs(measured - truth) / truth <= 0.005, (measured, truth)
        assert monitor.fan_meter is not None
        fans_truth = rack.fan_energy_joules - start_fans
        fans = monitor.fan_meter.energy_joules
        assert fans_truth > 1000.0, "the fans really ran"
        assert abs(fans - fans_truth) / fans_truth <= 0.005, (fans, fans_truth)
    finally:
        for unit in units:
            await unit.stop()
