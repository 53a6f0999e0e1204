"""One compute unit in a slot: its power state, its firmware task, its draw and its heat.

``TwinUnit`` is the :class:`racklet.hw.UnitHost` its firmware runs on. Powering on starts the
boot ROM: after the profile's ROM delay (simulated) the injected firmware coroutine runs as a
task the unit owns. Power off cancels that task; a reset restarts it once the old one has
finished unwinding; a firmware that returns leaves the unit halted, still powered. The draw
follows the activity the firmware reports and the load (a share of its cores the OS keeps busy)
through the profile's curve, capped while throttled; ``idle_watts`` and ``full_load_watts`` are
this board's own, the profile's figures with the manufacturing spread the rack drew for it.
Its firmware holds the draw under a power cap (``power_limit_watts``, set through the BMC) and,
while the busbar sags (``under_voltage``, set by the rack), throttles to its lowest clock, as a
Pi's firmware does below 4.63 V: either way the load it runs is clamped, never below the
profile's ``cap_floor_load``.
This module does not run physics on its own: the rack ticks every unit (see ``_rack``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from racklet.hw import Activity, BootSource, Clock, UnitHost, UnitLinkPort
from racklet.log import get_logger
from racklet.twin._fan import TwinFan
from racklet.twin._link import BackplanePipe, ConsoleBuffer
from racklet.twin._profile import UnitProfile
from racklet.twin._switch import SwitchPort
from racklet.twin._thermal import ThermalModel

Firmware = Callable[[UnitHost], Awaitable[None]]

DEFAULT_LOAD = 0.05


class TwinUnit:
    """A simulated Raspberry-Pi-class unit; also the ``UnitHost`` its firmware sees."""

    def __init__(
        self,
        name: str,
        slot: int,
        profile: UnitProfile,
        clock: Clock,
        firmware: Firmware,
        storage: Path,
        agent_port: int = 0,
    ) -> None:
        self.name = name
        self.slot = slot
        self.profile = profile
        self.clock: Clock = clock
        self.storage = storage
        self.agent_port = agent_port
        self.backplane = BackplanePipe(name)
        self.link: UnitLinkPort = self.backplane
        self.console_buffer = ConsoleBuffer()
        self.boot_source = BootSource.SD_CARD
        self.present = True
        self.powered = False
        self.cuts: set[str] = set()
        """Supplies a fault cut (``busbar``, ``feed``): while any is, the unit cannot power on."""
        self.sensor_taps: dict[str, Callable[[float], float]] = {}
        """Failing sensors: a filter over the true reading, by sensor (``temperature``,
        ``power``); it may raise ``OSError`` (the chip NACKs). Set by the fault engine."""
        self.port: SwitchPort | None = None
        """The switch port its Ethernet is cabled to (the rack attaches it)."""
        self.energy_joules = 0.0
        """Ground truth: the exact integral of the true draw over simulated time."""
        self.idle_watts = profile.idle_watts
        self.full_load_watts = profile.full_load_watts
        self.sensor_rng = random.Random(name)
        """Drives this board's sensor noise; the rack seeds it, so a rack is reproducible."""
        self.serial_seed = random.Random(f"serial/{name}").getrandbits(48)
        """Its serial number and MAC addresses come from this; the rack seeds it too."""
        self.resets = 0
        self.brownouts = 0
        self.thermal = ThermalModel(
            profile.ambient_celsius,
            profile.thermal_resistance_c_per_w,
            profile.thermal_time_constant_seconds,
            profile.throttle_celsius,
            profile.throttle_release_celsius,
            profile.fan_thermal_resistance_c_per_w,
        )
        self.fan = TwinFan(
            "fan-1",
            profile.fan_max_rpm,
            profile.fan_time_constant_seconds,
            profile.fan_rated_watts,
        )
        """The fan on its BMC board, blowing over the unit (the board drives it)."""
        self.rack_airflow = 0.0
        self.power_limit_watts: float | None = None
        """The cap its BMC set (None: uncapped); the firmware clamps its clocks under it."""
        self.under_voltage = False
        """The busbar sags (the rack sets it): the firmware throttles to its lowest clock."""
        """Share of its rated air the rack's fans push through this unit's tray (0 to 1)."""
        self._firmware = firmware
        self._activity: Activity | None = None
        self._load = DEFAULT_LOAD
        self._shutdown_requested = False
        self._task: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._log = get_logger("twin", unit=name)

    # -- truth, for the physics and for tests --------------------------------------------

    @property
    def activity(self) -> Activity | None:
        """What the CPU does; None while unpowered."""
        return self._activity if self.powered else None

    @property
    def temperature(self) -> float:
        return self.thermal.temperature

    @property
    def throttled(self) -> bool:
        return self.thermal.throttled

    @property
    def floor_watts(self) -> float:
        """The lowest draw a cap can hold this board at with every core busy."""
        return self.idle_watts + (self.full_load_watts - self.idle_watts) * (
            self.profile.cap_floor_load
        )

    def _load_cap(self) -> float:
        """The highest load the firmware lets run now (thermal, under-voltage, power cap)."""
        profile = self.profile
        cap = 1.0
        if self.thermal.throttled:
            cap = profile.throttle_load_cap
        if self.under_voltage:
            cap = min(cap, profile.cap_floor_load)
        limit = self.power_limit_watts
        if limit is not None:
            span = self.full_load_watts - self.idle_watts
            share = (limit - self.idle_watts) / span if span > 0 else 1.0
            cap = min(cap, max(profile.cap_floor_load, share))
        return cap

    @property
    def effective_load(self) -> float:
        return min(self._load, self._load_cap())

    @property
    def limiting(self) -> bool:
        """Whether a power cap or an under-voltage throttle holds the load back now."""
        if self.activity is not Activity.RUNNING:
            return False
        profile = self.profile
        held = self._load_cap()
        thermal = profile.throttle_load_cap if self.thermal.throttled else 1.0
        return held < thermal and self._load > held

    @property
    def power_watts(self) -> float:
        profile = self.profile
        activity = self.activity
        if activity is None:
            return profile.off_watts
        if activity is Activity.RUNNING:
            span = self.full_load_watts - self.idle_watts
            return self.idle_watts + span * self.effective_load
        if activity is Activity.HALTED:
            return profile.halted_watts
        return profile.boot_watts

    @property
    def firmware_running(self) -> bool:
        """Whether a firmware task exists that has not finished (it may be unwinding)."""
        return any(not task.done() for task in self._tasks())

    def _tasks(self) -> list[asyncio.Task[None]]:
        tasks = list(self._retired)
        if self._task is not None:
            tasks.append(self._task)
        return tasks

    def spread(self, idle_factor: float, full_load_factor: float) -> None:
        """This board's draw: the profile's figures times its manufacturing factors."""
        self.idle_watts = self.profile.idle_watts * idle_factor
        self.full_load_watts = max(self.idle_watts, self.profile.full_load_watts * full_load_factor)

    def set_load(self, fraction: float) -> None:
        """The CPU utilisation the unit's workload asks for, 0.0 to 1.0."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"load must be within 0..1, got {fraction}")
        self._load = fraction

    def tick(self, seconds: float) -> None:
        """Advance energy, fan and temperature by ``seconds`` at the present draw."""
        power = self.power_watts
        self.energy_joules += power * max(0.0, seconds)
        self.fan.step(seconds)
        self.thermal.step(power, seconds, min(1.0, self.fan.airflow + self.rack_airflow))

    # -- board lines -----------------------------------------------------------------------

    def power_on(self) -> None:
        if self.powered or not self.present or self.cuts:
            return
        self.powered = True
        self._log.info("power on")
        self._boot()

    def power_off(self) -> None:
        if not self.powered:
            return
        self.powered = False
        self._activity = None
        self._shutdown_requested = False
        self._retire()
        self.backplane.sever()
        self._log.info("power off")

    def reset(self) -> None:
        """The reset line was pulsed: restart from the boot ROM if powered."""
        if not self.powered:
            return
        self.resets += 1
        self._log.info("reset")
        self._boot()

    def brown_out(self) -> None:
        """The busbar sagged: a powered unit resets like on a reset pulse."""
        if not self.powered:
            return
        self.brownouts += 1
        self._boot()

    def request_shutdown(self) -> None:
        """The shutdown-request line (GPIO3) was pulsed; the OS agent polls the flag."""
        if self.powered:
            self._shutdown_requested = True

    def _retire(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
        return task

    def _boot(self) -> None:
        previous = self._retire()
        self.backplane.sever()
        self._shutdown_requested = False
        self._activity = Activity.FIRMWARE
        self._task = asyncio.create_task(self._run(previous), name=f"firmware:{self.name}")

    async def _run(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await self.clock.sleep(self.profile.rom_delay_seconds)
        try:
            await self._firmware(self)
        except Exception:
            self._log.exception("firmware crashed")
            self.console("firmware crashed; system halted")
        if self.powered:
            self._activity = Activity.HALTED

    async def stop(self) -> None:
        """Power off and await every firmware task and link session (rack shutdown)."""
        self.power_off()
        tasks = self._tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.backplane.close()

    # -- UnitHost ----------------------------------------------------------------------------

    def console(self, line: str) -> None:
        if self.powered:
            self.console_buffer.write(line.encode("utf-8", "replace") + b"\r\n")

    def set_activity(self, activity: Activity) -> None:
        if self.powered:
            self._activity = activity

    def temperature_celsius(self) -> float:
        return self.thermal.temperature

    def cpu_load(self) -> float:
        return self._load if self.activity is Activity.RUNNING else 0.0

    def set_cpu_load(self, fraction: float) -> None:
        """The OS keeps ``fraction`` of its cores busy (a stress job, a workload)."""
        self.set_load(fraction)

    def shutdown_requested(self) -> bool:
        return self._shutdown_requested

    def link_up(self) -> bool:
        return self.port is not None and self.port.carrier

    def peer_address(self, unit: str, host: str, port: int) -> tuple[str, int]:
        if self.port is None:
            return host, port
        return self.port.peer_address(unit, host, port)

    def capacity(self) -> tuple[int, int]:
        return self.profile.cores, self.profile.memory_mib

    def is_cabled_up(self) -> bool:
        """The unit's side of the cable: its PHY has power and it sits in its slot."""
        return self.powered and self.present
