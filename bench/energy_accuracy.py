"""Energy you can trust: every BMC's joules against the twin's ground truth.

A rack of real BMC services (``racklet.bmc.BmcService``: the PAC1921 driver over the twin's
register model, with its noise, sampled every 0.5 simulated seconds and integrated by the
trapezoid rule) over a twin rack whose clock the run advances by hand, so two simulated hours
take seconds and nothing depends on the host's speed. Every unit runs a load schedule (steps
every ten minutes, one unit switched off for half an hour) and, halfway, every BMC restarts
(stopped, a few seconds without a BMC, started fresh from its state dir). The twin integrates
each unit's true draw exactly (``TwinUnit.energy_joules``): that is the ground truth.

``python -m bench energy_accuracy [--hours H] [--units N] [--seed S]`` prints each unit's
joules, the truth and the error. The test (``tests/bmc/state/test_energy_truth.py``) runs the same.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.hw import Activity, UnitHost
from racklet.twin import RackDescription, TwinRack

SAMPLE_PERIOD = 0.5
RESTART_GAP = 3.0  # simulated seconds with no BMC running
LOADS = (0.05, 0.25, 0.5, 0.75, 1.0, 0.0)
STEP_EVERY = 600.0


class StepClock:
    """Simulated time that moves only when the run advances it."""

    speed = 1.0

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 1e-9:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [f for t, f in self._sleepers if t <= self.now + 1e-9]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self.now + 1e-9]
        for future in due:
            if not future.done():
                future.set_result(None)


async def _idle_os(host: UnitHost) -> None:
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


@dataclass
class UnitEnergy:
    unit: str
    truth: float
    measured: float
    before_restart: float
    after_restart: float
    decreased: bool
    """Whether the BMC's counter was ever seen smaller than it had been."""

    @property
    def error(self) -> float:
        return (self.measured - self.truth) / self.truth


@dataclass
class EnergyRun:
    units: list[UnitEnergy] = field(default_factory=list)
    simulated_seconds: float = 0.0
    wall_seconds: float = 0.0
    busbar_truth: float = 0.0
    fans_truth: float = 0.0
    """The rack fans' share of the busbar (undriven here: they run at full duty)."""


async def energy_run(
    root: Path, *, units: int = 5, hours: float = 2.0, seed: int = 0, restart: bool = True
) -> EnergyRun:
    """Run the schedule; the measured and true joules of every unit."""
    started = time.perf_counter()
    clock = StepClock()
    rack = TwinRack(
        RackDescription(units=units, seed=seed),
        clock,  # type: ignore[arg-type]
        _idle_os,
        storage_root=root / "units",
    )
    names = rack.description.unit_names()

    def service(name: str) -> BmcService:
        settings = BmcSettings(
            unit=name,
            state_dir=root / "bmc" / name,
            firmware_version="racklet-bmc 0.1.0",
            sample_period=SAMPLE_PERIOD,
        )
        return BmcService(rack.board(name), settings)

    for name in names:
        write_accounts(root / "bmc" / name / "accounts.json", "admin", "energy-run-password")
    services = {name: service(name) for name in names}
    for bmc in services.values():
        await bmc.start()
    schedule = random.Random(f"energy-run/{seed}")
    last_seen = dict.fromkeys(names, 0.0)
    decreased = dict.fromkeys(names, False)
    before = dict.fromkeys(names, 0.0)
    after = dict.fromkeys(names, 0.0)
    total = hours * 3600.0
    restart_at = total / 2 if restart else None

    async def settle() -> None:
        """Let every BMC take the sample due now (a write of its counter may be under way
        in a thread, so wait on the host too, up to a bound)."""
        for attempt in range(20_000):
            if all(
                bmc.context.meter.sampled_at == clock.now
                or not bmc.context.meter.monitor_ok
                or not rack.board(name).presence.is_present()
                for name, bmc in services.items()
            ):
                return
            await asyncio.sleep(0 if attempt < 100 else 0.001)
        raise RuntimeError("a BMC did not take its sample")

    def tick() -> None:
        rack.step(SAMPLE_PERIOD)
        clock.advance(SAMPLE_PERIOD)

    try:
        for name in names:
            rack.board(name).power_switch.set(True)
        await settle()
        while clock.now < total - 1e-9:
            if clock.now % STEP_EVERY < 1e-9:
                for name in names:
                    rack.unit(name).set_load(schedule.choice(LOADS))
                if abs(clock.now - STEP_EVERY * 3) < 1e-9:
                    rack.board(names[-1]).power_switch.set(False)
                if abs(clock.now - STEP_EVERY * 6) < 1e-9:
                    rack.board(names[-1]).power_switch.set(True)
            if restart_at is not None and abs(clock.now - restart_at) < 1e-9:
                for name, bmc in services.items():
                    before[name] = bmc.energy_joules
                    await bmc.stop()
                for _ in range(int(RESTART_GAP / SAMPLE_PERIOD)):
                    tick()
                services = {name: service(name) for name in names}
                for name, bmc in services.items():
                    await bmc.start()
                    after[name] = bmc.energy_joules
            tick()
            await settle()
            for name, bmc in services.items():
                joules = bmc.energy_joules
                decreased[name] = decreased[name] or joules < last_seen[name]
                last_seen[name] = joules
    finally:
        for bmc in services.values():
            await bmc.stop()
        await rack.stop()
    result = EnergyRun(
        simulated_seconds=clock.now,
        wall_seconds=time.perf_counter() - started,
        busbar_truth=rack.busbar.energy_joules,
        fans_truth=rack.fan_energy_joules,
    )
    for name in names:
        result.units.append(
            UnitEnergy(
                unit=name,
                truth=rack.unit(name).energy_joules,
                measured=services[name].energy_joules,
                before_restart=before[name],
                after_restart=after[name],
                decreased=decreased[name] or after[name] < before[name],
            )
        )
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench energy_accuracy")
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="racklet-energy-") as tmp:
        run = asyncio.run(energy_run(Path(tmp), units=args.units, hours=args.hours, seed=args.seed))
    print(
        f"{run.simulated_seconds / 3600:.2f} simulated hours, {len(run.units)} units, "
        f"one BMC restart each, in {run.wall_seconds:.1f} s wall"
    )
    print(f"{'unit':8} {'truth J':>12} {'BMC J':>12} {'error':>9}")
    for unit in run.units:
        print(f"{unit.unit:8} {unit.truth:12.1f} {unit.measured:12.1f} {unit.error:+9.4%}")
    worst = max(abs(unit.error) for unit in run.units)
    print(
        f"worst |error| {worst:.4%} (goal 0.5 %); counters never decreased: "
        f"{not any(unit.decreased for unit in run.units)}"
    )
