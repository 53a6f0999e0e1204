"""Fan control: how a cooling zone answers a load step (settling time, overshoot).

The RMC's real cooling controller (``racklet.rmc._cooling``) drives the twin's real rack
fans (tachometer lag) over three twin units' thermal models, stepped on a manual clock (a
simulated hour costs well under a second). Each unit idles until the zone is steady, then
goes to ``--load`` CPU; the zone must bring the hottest unit back to its set-point.
Settling time: from the step until the temperature stays within ±0.5 °C of the set-point;
overshoot: the peak above the set-point. Run: ``python -m bench fan_control``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from racklet.bmc.login import EventBus
from racklet.hw import Activity, UnitHost
from racklet.log import get_logger
from racklet.rmc._cooling import CoolingController
from racklet.rmc._pid import parse_cooling
from racklet.twin import RackDescription, SimClock, TwinRack


class _Clock:
    """Simulated time that moves only when the bench says (the twin's physics is stepped)."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def _idle(host: UnitHost) -> None:
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


async def _run(kp: float, ki: float, setpoint: float, load: float) -> dict[str, float]:
    clock = _Clock()
    rack = TwinRack(
        RackDescription(units=3), cast(SimClock, clock), _idle, Path(tempfile.mkdtemp())
    )
    board = rack.rack_board()
    for unit in rack.units.values():
        unit.power_on()
    for _ in range(10):
        await asyncio.sleep(0)  # the firmware starts; the boot ROM delay is a zero sleep here
    inputs = [
        {"sensor": s, "setpointCelsius": setpoint, "pid": {"kp": kp, "ki": ki, "iMax": 100}}
        for s in board.temperatures
    ]
    config = parse_cooling(
        {"zones": [{"name": "rack", "fans": [f.name for f in board.fans], "inputs": inputs}]}
    )
    controller = CoolingController(
        config,
        {f.name: f for f in board.fans},
        board.temperatures,
        clock,
        EventBus(),
        get_logger("bench"),
    )

    def step() -> None:
        controller.step()
        rack.step(1.0)
        clock.now += 1.0

    for _ in range(1800):
        step()
    idle_duty = board.fans[0].duty_percent()
    for unit in rack.units.values():
        unit.set_load(load)
    peak, settled_at = 0.0, None
    for second in range(1, 3601):
        step()
        hottest = max(u.temperature for u in rack.units.values())
        peak = max(peak, hottest)
        if abs(hottest - setpoint) > 0.5:
            settled_at = None
        elif settled_at is None:
            settled_at = second
    result = {
        "idle_duty": idle_duty,
        "loaded_duty": board.fans[0].duty_percent(),
        "overshoot": peak - setpoint,
        "settle": float("nan") if settled_at is None else float(settled_at),
        "watts": rack.busbar.power_watts,
    }
    for unit in rack.units.values():
        await unit.stop()
    return result


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fan_control")
    parser.add_argument("--setpoint", type=float, default=55.0)
    parser.add_argument("--load", type=float, default=0.5)
    args = parser.parse_args(list(argv))
    print(f"fan control: 3 units, load step 0 -> {args.load:.0%}, set-point {args.setpoint} °C")
    print(
        f"{'kp':>5} {'ki':>6} {'idle PWM':>9} {'PWM after':>10} {'settle s':>9} "
        f"{'overshoot °C':>13} {'wall s':>7}"
    )
    for kp, ki in ((4.0, 0.1), (8.0, 0.1), (4.0, 0.4), (2.0, 0.05)):
        started = time.perf_counter()
        r = asyncio.run(_run(kp, ki, args.setpoint, args.load))
        print(
            f"{kp:5.1f} {ki:6.2f} {r['idle_duty']:8.1f}% {r['loaded_duty']:9.1f}% "
            f"{r['settle']:9.0f} {r['overshoot']:13.2f} {time.perf_counter() - started:7.2f}"
        )
