"""Power control (the ComputerSystem.Reset semantics) and metering of one unit.

Every delay reads the board's clock, so in the twin ``--speed`` scales them. At most one
power transition (a graceful shutdown or a power cycle) runs at a time: a new reset request
cancels the one in flight, because the newest request is what the caller wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from racklet.bmc._state.boot import BootStatus
from racklet.bmc._state.energy import PERSIST_EVERY, EnergyCount, EnergyFile
from racklet.bmc._state.events import EventBus
from racklet.hw import BmcBoard, PowerReading
from racklet.log import ContextLogger

ResetType = Literal["On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"]
RESET_TYPES: tuple[str, ...] = get_args(ResetType)
SHUTDOWN_POLL = 0.2  # simulated seconds between draw checks during a graceful shutdown
CYCLE_OFF_TIME = 1.0  # simulated seconds without power in a PowerCycle
WINDOW_MINUTES = 1  # Redfish PowerMetrics: min/max/average over the last minute of samples


@dataclass(frozen=True)
class PowerStats:
    """The draw over the last :data:`WINDOW_MINUTES` of samples (Redfish ``PowerMetrics``)."""

    min_watts: float
    max_watts: float
    average_watts: float


@dataclass
class PowerPolicy:
    halted_watts: float = 1.0
    """A unit drawing less than this after a shutdown request has halted."""
    shutdown_timeout: float = 20.0
    """Simulated seconds to wait for a halt before cutting power anyway."""


class PowerControl:
    """The unit's DC/DC switch, its reset and shutdown lines, and the transition in flight."""

    def __init__(
        self,
        board: BmcBoard,
        boot: BootStatus,
        policy: PowerPolicy,
        log: ContextLogger,
        events: EventBus | None = None,
    ) -> None:
        self._events = events or EventBus()
        self._origin = f"/redfish/v1/Systems/{board.unit}"
        self._board = board
        self._boot = boot
        self._policy = policy
        self._log = log
        self._transition: asyncio.Task[None] | None = None
        self._target: str | None = None
        self._lock = asyncio.Lock()
        self.last_on = board.power_switch.is_on()
        self.on_switch: Callable[[], None] | None = None
        """Called when the switch changes, before the change is published (the meter reads
        the power monitor then): a look woken by the power event never gets the reading from
        before the change, such as an Off unit still drawing its last sampled watts."""

    def power_state(self) -> str:
        """Resource.PowerState: On, Off, or PoweringOn/PoweringOff during a transition."""
        if self._transition is not None and not self._transition.done() and self._target:
            return self._target
        return "On" if self._board.power_switch.is_on() else "Off"

    def _switch(self, on: bool) -> None:
        self._board.power_switch.set(on)
        self.observe(on)

    def observe(self, on: bool) -> None:
        """Record the switch state; a change starts or ends a boot."""
        if on == self.last_on:
            return
        self.last_on = on
        if self.on_switch is not None:
            self.on_switch()
        self._events.power(self._origin, self._board.unit, "On" if on else "Off")
        if on:
            self._boot.powered_on()
        else:
            self._boot.powered_off()

    async def reset(self, reset_type: str) -> None:
        """Carry out one ComputerSystem.Reset; long transitions continue in the background."""
        async with self._lock:
            await self.cancel_transition()
            self._reset(reset_type)

    def _reset(self, reset_type: str) -> None:
        is_on = self._board.power_switch.is_on()
        self._log.info(f"reset {reset_type} (power was {'on' if is_on else 'off'})")
        if reset_type == "On":
            self._switch(True)
        elif reset_type == "ForceOff":
            self._switch(False)
        elif reset_type == "ForceRestart":
            if is_on:
                self._board.reset.pulse()
                self._boot.powered_on()
        elif reset_type == "GracefulShutdown":
            if is_on:
                self._board.shutdown_request.pulse()
                self._start("PoweringOff", self._await_halt())
        elif reset_type == "PowerCycle":
            if is_on:
                self._switch(False)
                self._start("PoweringOn", self._cycle())
            else:
                self._switch(True)
        else:
            raise ValueError(f"unknown reset type {reset_type!r}")

    def _start(self, target: str, work: object) -> None:
        self._target = target
        self._events.power(self._origin, self._board.unit, target)
        self._transition = asyncio.create_task(work, name=f"bmc:{self._board.unit}:power")  # type: ignore[arg-type]

    async def _await_halt(self) -> None:
        clock = self._board.clock
        deadline = clock.monotonic() + self._policy.shutdown_timeout
        while clock.monotonic() < deadline:
            try:
                watts = self._board.power_monitor.read().watts
            except OSError:
                watts = None
            if watts is not None and watts < self._policy.halted_watts:
                self._log.info(f"unit halted ({watts:.2f} W); switching off")
                break
            await clock.sleep(SHUTDOWN_POLL)
        else:
            self._log.warning("unit did not halt in time; switching off")
        self._switch(False)

    async def _cycle(self) -> None:
        await self._board.clock.sleep(CYCLE_OFF_TIME)
        self._switch(True)

    async def cancel_transition(self) -> None:
        task, self._transition, self._target = self._transition, None, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def idle(self) -> None:
        """Wait for the transition in flight (if any) to finish."""
        if self._transition is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._transition)


class Meter:
    """Samples the power monitor and temperature; integrates energy (trapezoid rule) into a
    counter kept on the BMC's storage (``energy``: it continues across BMC restarts)."""

    def __init__(
        self,
        board: BmcBoard,
        power: PowerControl,
        log: ContextLogger,
        events: EventBus | None = None,
        temperature_caution: float = 70.0,
        energy: EnergyFile | None = None,
    ) -> None:
        self._events = events or EventBus()
        self.temperature_caution = temperature_caution
        self._too_hot = False
        self._board = board
        self._power = power
        self._log = log
        self.reading: PowerReading | None = None
        self.celsius: float | None = None
        self.energy_joules = 0.0
        self.energy_created = time.time()
        """Unix seconds when the energy count began (OpenMetrics ``_created``)."""
        self._energy = energy
        self._persisted_at = time.monotonic()
        self.sampled_at: float | None = None
        self.monitor_ok = True
        self.temperature_ok = True
        self._window: deque[tuple[float, float]] = deque()
        """(clock time, watts) of the samples in the last :data:`WINDOW_MINUTES`."""
        self._reads = 0
        power.on_switch = self._read_power

    def stats(self) -> PowerStats | None:
        """Min, max and mean of the window's samples (evenly spaced by the sampling period);
        ``None`` before the first reading."""
        if not self._window:
            return None
        watts = [w for _, w in self._window]
        return PowerStats(min(watts), max(watts), sum(watts) / len(watts))

    def _remember(self, now: float, watts: float) -> None:
        self._window.append((now, watts))
        while self._window[0][0] < now - WINDOW_MINUTES * 60:
            self._window.popleft()

    def sample(self) -> None:
        reads = self._reads
        self._power.observe(self._board.power_switch.is_on())
        if self._reads == reads:  # a change of the switch has not read it just now
            self._read_power()
        try:
            self.celsius = self._board.temperature.read_celsius()
            self.temperature_ok = True
            self._check_threshold(self.celsius)
        except OSError as exc:
            if self.temperature_ok:
                self._log.warning(f"temperature sensor unreadable: {exc}")
            self.temperature_ok = False

    def _read_power(self) -> None:
        """Read the power monitor; integrate the energy since the last reading."""
        now = self._board.clock.monotonic()
        self._reads += 1
        try:
            reading = self._board.power_monitor.read()
        except OSError as exc:
            if self.monitor_ok:
                self._log.warning(f"power monitor unreadable: {exc}")
            self.monitor_ok = False
        else:
            if self.reading is not None and self.sampled_at is not None:
                elapsed = max(0.0, now - self.sampled_at)
                self.energy_joules += (self.reading.watts + reading.watts) / 2 * elapsed
            self.reading, self.sampled_at, self.monitor_ok = reading, now, True
            self._remember(now, reading.watts)

    def _check_threshold(self, celsius: float) -> None:
        """An event when the temperature crosses its caution threshold, either way."""
        hot = celsius > self.temperature_caution
        if hot == self._too_hot:
            return
        self._too_hot = hot
        origin = f"/redfish/v1/Chassis/{self._board.unit}/Sensors/temperature"
        limit = self.temperature_caution if hot else None
        self._events.threshold(origin, "temperature", round(celsius, 1), "Cel", limit)

    async def restore(self) -> None:
        """Continue the count the BMC last wrote (before the first sample)."""
        if self._energy is not None:
            count = await asyncio.to_thread(self._energy.load)
            self.energy_joules, self.energy_created = count.joules, count.created
            self._persisted_at = time.monotonic()

    async def persist(self) -> None:
        """Write the running total (never a smaller one than the file holds: see _energy)."""
        if self._energy is not None:
            count = EnergyCount(self.energy_joules, self.energy_created)
            self._persisted_at = time.monotonic()
            await asyncio.to_thread(self._energy.save, count)

    async def run(self, period: float) -> None:
        clock = self._board.clock
        while True:
            due = clock.monotonic() + period
            self.sample()
            if time.monotonic() - self._persisted_at >= PERSIST_EVERY:
                try:
                    await self.persist()
                except OSError as exc:
                    self._log.warning(f"cannot persist the energy counter: {exc}")
            # Keep the cadence: a slow write of the counter does not stretch the period.
            await clock.sleep(max(0.0, due - clock.monotonic()))
