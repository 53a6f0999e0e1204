"""A rack: first a plain description, then its realization as a running twin.

:class:`RackDescription` reads in a few lines and does nothing; :class:`TwinRack` builds units
unit-1..unit-N in slots 1..N (slot 1 at the bottom), one BMC board per unit, one busbar, and
owns the physics loop that advances heat, energy and the busbar in simulated time.

A believable rack: each board's idle and full-load draw is the profile's figure times a
factor drawn once from the rack's seed (normal, the profile's spread as one deviation,
clipped at two), and its sensors' noise comes from the same seed, so one seed always builds
the same rack. Heat rises: a unit's inlet air is warmer by the profile's ``inlet_rise_c_per_w``
for every watt the units below it dissipate, divided by the rack's airflow
(:attr:`TwinRack.airflow`: what the rack fans the RMC drives really move, 1.0 at full speed),
so a slower fan warms every unit above the bottom one.
``stop()`` cancels and awaits every task the rack owns: the physics loop and every unit's
firmware.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from racklet.config import make_dir
from racklet.hw import BmcBoard, RackBoard
from racklet.log import get_logger
from racklet.twin._board import MonitorSocket, build_board
from racklet.twin._busbar import Busbar
from racklet.twin._clock import SimClock
from racklet.twin._profile import UnitProfile, load_profile
from racklet.twin._rack_board import (
    SlotSensor,
    build_rack_board,
    rack_airflow,
    rack_airflow_ratio,
    rack_fans,
)
from racklet.twin._switch import PORT_BANDWIDTH_BPS, TwinSwitch
from racklet.twin._unit import Firmware, TwinUnit
from racklet.twin.errors import TwinError

MAX_UNITS = 512  # a large twin (a row of racks); `racklet up` itself stops at 16
PHYSICS_TICK_SECONDS = 0.1
MAX_WALL_TICK_HZ = 200.0

UnitFactory = Callable[..., TwinUnit]


class RackDescription(BaseModel):
    """What a rack is made of, before anything runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="rack-1", min_length=1)
    units: int = Field(default=5, ge=1, le=MAX_UNITS)
    profile: str = "raspberry-pi-4"
    psu_rated_watts: float = Field(default=100.0, gt=0)
    seed: int = 0
    """Draws each board's manufacturing spread and its sensors' noise: same seed, same rack."""
    port_bandwidth_bps: float = Field(default=PORT_BANDWIDTH_BPS, gt=0)
    uplink_bandwidth_bps: float = Field(default=PORT_BANDWIDTH_BPS, gt=0)

    def unit_names(self) -> list[str]:
        return [f"unit-{slot}" for slot in range(1, self.units + 1)]


class TwinRack:
    """The realization of a :class:`RackDescription` on one :class:`SimClock`."""

    def __init__(
        self,
        description: RackDescription,
        clock: SimClock,
        firmware: Firmware,
        storage_root: Path,
        agent_ports: Mapping[str, int] | None = None,
        *,
        unit_factory: UnitFactory = TwinUnit,
        profile: UnitProfile | None = None,
        tick_seconds: float = PHYSICS_TICK_SECONDS,
    ) -> None:
        self.description = description
        self.clock = clock
        self.profile = profile or load_profile(description.profile)
        self.busbar = Busbar(description.psu_rated_watts, self.profile.supply_volts)
        self.storage_root = storage_root
        self.tick_seconds = tick_seconds
        ports = agent_ports or {}
        self.units: dict[str, TwinUnit] = {}
        self.switch = TwinSwitch(
            description.units,
            port_bandwidth_bps=description.port_bandwidth_bps,
            uplink_bandwidth_bps=description.uplink_bandwidth_bps,
        )
        self._monitors: dict[str, MonitorSocket] = {}
        for slot, name in enumerate(description.unit_names(), start=1):
            unit = unit_factory(
                name=name,
                slot=slot,
                profile=self.profile,
                clock=clock,
                firmware=firmware,
                storage=storage_root / name,
                agent_port=ports.get(name, 0),
            )
            self.units[name] = unit
            _realize_spread(unit, random.Random(f"{description.name}/{description.seed}/{name}"))
            unit.port = self.switch.attach(slot, unit.is_cabled_up)
            self._monitors[name] = MonitorSocket(unit, self.profile.supply_volts)
        self._boards: dict[str, BmcBoard] = {}
        self.rack_fans = rack_fans()
        """The rack's own fans: on the busbar, driven by the RMC (``rack_board()``)."""
        self.slot_sensors = {f"slot-{u.slot}": SlotSensor(u) for u in self.units.values()}
        self._rack_board: RackBoard | None = None
        self.fan_energy_joules = 0.0
        self._physics: asyncio.Task[None] | None = None
        self._log = get_logger("twin")

    @property
    def airflow(self) -> float:
        """The rack fans' airflow over its nominal (1.0 at full speed; the RMC drives it)."""
        return rack_airflow_ratio(self.rack_fans)

    def unit(self, name: str) -> TwinUnit:
        try:
            return self.units[name]
        except KeyError:
            known = ", ".join(self.units)
            raise TwinError(
                f"rack {self.description.name} has no unit {name!r} ({known})"
            ) from None

    def board(self, name: str) -> BmcBoard:
        """The BMC board of unit ``name`` (one per unit, built on first use)."""
        board = self._boards.get(name)
        if board is None:
            board = build_board(self.unit(name), self.clock, self._monitors[name])
            self._boards[name] = board
        return board

    def monitor(self, name: str) -> MonitorSocket:
        """The socket of unit ``name``'s power-monitor chip (a fault can pull the chip)."""
        self.unit(name)
        return self._monitors[name]

    def rack_board(self) -> RackBoard:
        """The RMC's board: rack fans, slot temperature inputs, the busbar's monitor."""
        if self._rack_board is None:
            self._rack_board = build_rack_board(
                self.description.name, self.clock, self.busbar, self.rack_fans, self.slot_sensors
            )
        return self._rack_board

    def pull(self, name: str) -> None:
        """Hot-swap out: the unit loses power and leaves its slot; its monitor NACKs."""
        unit = self.unit(name)
        unit.power_off()
        unit.present = False
        self._monitors[name].pull()

    def insert(self, name: str) -> None:
        """Hot-swap in: the unit is back in its slot, powered off."""
        unit = self.unit(name)
        if unit.present:
            return
        unit.present = True
        self._monitors[name].insert()

    async def start(self) -> None:
        if self._physics is not None:
            return
        for unit in self.units.values():
            await asyncio.to_thread(make_dir, unit.storage)
        self._physics = asyncio.create_task(self._physics_loop(), name="twin:physics")
        self._log.info(
            f"rack {self.description.name}: {len(self.units)} x {self.profile.name}, "
            f"PSU {self.description.psu_rated_watts:.0f} W"
        )

    async def stop(self) -> None:
        await self.switch.stop()
        physics, self._physics = self._physics, None
        if physics is not None:
            physics.cancel()
            await asyncio.gather(physics, return_exceptions=True)
        for unit in self.units.values():
            await unit.stop()

    def step(self, seconds: float) -> None:
        """Advance the physics by ``seconds`` of simulated time."""
        self._couple_inlets()
        for fan in self.rack_fans:
            fan.step(seconds)
        airflow = rack_airflow(self.rack_fans)
        fans = sum(fan.power_watts for fan in self.rack_fans)
        self._sag(fans)
        for unit in self.units.values():
            unit.rack_airflow = airflow
            unit.tick(seconds)
        self.fan_energy_joules += fans * max(0.0, seconds)  # ground truth for the fans' meter
        draws = [unit.power_watts for unit in self.units.values()]
        draws.append(fans)
        if self.busbar.settle(draws, seconds):
            for unit in self.units.values():
                unit.brown_out()

    def _sag(self, fans: float) -> None:
        """A demand above the PSU's rating pulls the busbar's voltage down: every unit's
        firmware sees under-voltage and throttles to its lowest clock at once (a Pi does so
        below 4.63 V). The PSU browns out only if the throttled draw is still too much."""
        units = self.units.values()
        for unit in units:
            unit.under_voltage = False
        demand = fans + sum(unit.power_watts for unit in units)
        if demand > self.busbar.rated_watts:
            self.busbar.sags += 1
            for unit in units:
                unit.under_voltage = True

    def _couple_inlets(self) -> None:
        """Each unit's inlet: ambient plus the rise from every unit below it (heat rises)."""
        below = 0.0
        airflow = self.airflow  # never below still air's: convection moves a little
        for unit in sorted(self.units.values(), key=lambda u: u.slot):
            profile = unit.profile
            unit.thermal.ambient = profile.ambient_celsius + (
                profile.inlet_rise_c_per_w * below / airflow
            )
            below += unit.power_watts

    async def _physics_loop(self) -> None:
        # Never tick faster than MAX_WALL_TICK_HZ of real time, whatever the speed.
        interval = max(self.tick_seconds, self.clock.speed / MAX_WALL_TICK_HZ)
        last = self.clock.monotonic()
        while True:
            await self.clock.sleep(interval)
            now = self.clock.monotonic()
            self.step(now - last)
            last = now


def _realize_spread(unit: TwinUnit, rng: random.Random) -> None:
    """Give ``unit`` its own board: draw its spread and seed its sensors from ``rng``."""

    def factor(deviation: float) -> float:
        return 1.0 + deviation * max(-2.0, min(2.0, rng.gauss(0.0, 1.0)))

    profile = unit.profile
    unit.spread(factor(profile.idle_spread), factor(profile.full_load_spread))
    unit.sensor_rng = random.Random(rng.getrandbits(64))
    unit.serial_seed = rng.getrandbits(48)
