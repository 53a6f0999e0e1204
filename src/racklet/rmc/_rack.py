"""The rack's shared resources as the RMC runs them: cooling, the busbar meter, the display.

:class:`RackMonitor` owns two loops on the board's clock: the cooling controller
(:mod:`racklet.rmc._cooling`) and the busbar sampler, which reads the busbar's power monitor
(and the rack fans' feed monitor, where the board has one) every ``sample_seconds`` and
integrates the samples (trapezoids) into the rack's and the fans' energy in joules. Those
counters are saved in ``energy.json`` beside the RMC's accounts (atomically,
every ``save_seconds`` of wall time and on stop) and loaded on start, so it never goes back
across an RMC restart.

The front display is a model of what a 128×64 OLED (21 columns × 8 rows of a 6×8 font)
would show: :meth:`RackMonitor.display_lines`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from racklet.bmc.login import EventBus
from racklet.config import write_atomic
from racklet.hw import PowerMonitor, PowerReading, RackBoard
from racklet.log import ContextLogger
from racklet.rmc._cooling import CoolingController, ZoneMode
from racklet.rmc._pid import CoolingConfig, default_cooling
from racklet.rmc.errors import RmcConfigError
from racklet.tasks import OwnedTask

DISPLAY_COLUMNS = 21
DISPLAY_ROWS = 8
ENERGY_FILE = "energy.json"
MISMATCH_WATTS = 1.0
MISMATCH_SHARE = 0.1
"""The busbar reading may differ from the units' and fans' sum by this much (W, or share of
the busbar, whichever is larger) before it is an alert: the BMCs are polled every 2 s, so a
load step shows as a brief difference; a leak, a bad meter or an unmetered load does not go."""
MISMATCH_POLLS = 3
"""...for this many polls of every BMC in a row (a unit just switched shows for one)."""
WINDOW_SECONDS = 60.0
"""The interval of the busbar's min/max/average (Redfish ``PowerMetrics.IntervalInMin`` 1)."""
BUSBAR_WARNING_SHARE = 0.9
"""Above this share of the PSU's rating the display and the status LED warn."""


class Meter:
    """One power monitor's samples integrated (trapezoids) into joules.

    A monitor that does not answer leaves the reading out (``ok`` false) and adds no energy
    for the gap, rather than guessing."""

    def __init__(self, monitor: PowerMonitor, name: str, log: ContextLogger) -> None:
        self.monitor = monitor
        self.name = name
        self.reading: PowerReading | None = None
        self.ok = False
        self.energy_joules = 0.0
        self._log = log
        self._last: tuple[float, float] | None = None
        self._window: deque[tuple[float, float]] = deque()
        """Good samples of the last :data:`WINDOW_SECONDS` (Redfish ``PowerMetrics``)."""

    def sample(self, now: float) -> None:
        try:
            reading = self.monitor.read()
        except OSError as exc:
            if self.ok:
                self._log.warning(f"{self.name} monitor unreadable: {exc}")
            self.ok = False
            self._last = None
            return
        if self._last is not None:
            then, watts = self._last
            self.energy_joules += (watts + reading.watts) / 2.0 * max(0.0, now - then)
        self._last = (now, reading.watts)
        self._window.append((now, reading.watts))
        while self._window and self._window[0][0] < now - WINDOW_SECONDS:
            self._window.popleft()
        self.reading = reading
        self.ok = True

    @property
    def watts(self) -> float | None:
        return self.reading.watts if self.ok and self.reading is not None else None

    def window(self) -> tuple[float, float, float] | None:
        """(min, max, average) watts over the last :data:`WINDOW_SECONDS`, None without samples."""
        if not self._window:
            return None
        watts = [w for _, w in self._window]
        return min(watts), max(watts), sum(watts) / len(watts)


@dataclass
class UnitSummary:
    """What the RMC last learnt of one unit from its BMC (for the display)."""

    power_state: str | None = None
    health: str | None = None
    power_watts: float | None = None
    """What its BMC's monitor read (``EnvironmentMetrics.PowerWatts``)."""


class RackMonitor:
    def __init__(
        self,
        board: RackBoard,
        state_dir: Path,
        events: EventBus,
        log: ContextLogger,
        cooling: CoolingConfig | None = None,
        *,
        refused: str | None = None,
        sample_seconds: float = 1.0,
        save_seconds: float = 10.0,
        origin: str = "",
    ) -> None:
        self.board = board
        self.fans = {fan.name: fan for fan in board.fans}
        self.cooling_refused = refused
        """Why the declared cooling was refused; then every rack fan runs flat out."""
        config = cooling or default_cooling(
            sorted(board.temperatures, key=_natural), list(self.fans)
        )
        try:
            self.cooling = CoolingController(
                config if refused is None else CoolingConfig(),
                self.fans,
                board.temperatures,
                board.clock,
                events,
                log,
                origin,
            )
        except RmcConfigError as exc:  # zones naming fans or sensors the rack lacks
            self.cooling_refused = str(exc)
            self.cooling = CoolingController(
                CoolingConfig(), self.fans, board.temperatures, board.clock, events, log, origin
            )
        self.cooling_config = self.cooling.config
        if self.cooling_refused is not None:
            log.error(f"cooling refused, every rack fan at 100 %: {self.cooling_refused}")
        self.sample_seconds = sample_seconds
        self.save_seconds = save_seconds
        self.busbar = Meter(board.busbar_monitor, "busbar", log)
        self.fan_meter = (
            None if board.fan_monitor is None else Meter(board.fan_monitor, "fans", log)
        )
        self.energy_created = time.time()
        self.units: dict[str, UnitSummary] = {}
        self.locate = False
        """The rack's own locate LED (``LocationIndicatorActive`` on ``Chassis/rack``)."""
        self._path = state_dir / ENERGY_FILE
        self._mismatched_polls = 0
        self._log = log
        self._saved_at = 0.0
        self._cooling_task = OwnedTask("rmc:cooling")
        self._sampler_task = OwnedTask("rmc:busbar")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        if self.cooling_refused is not None:
            for name, fan in self.fans.items():  # no zone drives them: fail safe, flat out
                try:
                    fan.set_duty_percent(100.0)
                except (OSError, ValueError) as exc:
                    self._log.warning(f"fan {name}: cannot set 100 %: {exc}")
        self.sample()
        self._cooling_task.start(self.cooling.run)
        self._sampler_task.start(self._sample_loop)

    async def stop(self) -> None:
        await self._cooling_task.stop()
        await self._sampler_task.stop()
        await asyncio.to_thread(self._save)

    # The busbar's reading and energy, as most callers want them.
    @property
    def reading(self) -> PowerReading | None:
        return self.busbar.reading

    @property
    def monitor_ok(self) -> bool:
        return self.busbar.ok

    @property
    def energy_joules(self) -> float:
        return self.busbar.energy_joules

    @energy_joules.setter
    def energy_joules(self, joules: float) -> None:
        self.busbar.energy_joules = joules

    def _load(self) -> None:
        try:
            saved = json.loads(self._path.read_text())
            joules, created = float(saved["rackJoules"]), float(saved["created"])
            fans = float(saved.get("fansJoules", 0.0))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._log.warning(f"rack energy not restored from {self._path}: {exc}")
            return
        self.busbar.energy_joules = max(self.busbar.energy_joules, joules)
        if self.fan_meter is not None:
            self.fan_meter.energy_joules = max(self.fan_meter.energy_joules, fans)
        self.energy_created = created

    def _save(self) -> None:
        document = {
            "rackJoules": self.busbar.energy_joules,
            "fansJoules": 0.0 if self.fan_meter is None else self.fan_meter.energy_joules,
            "created": self.energy_created,
        }
        write_atomic(self._path, json.dumps(document) + "\n", mode=0o600)

    # -- the meters --------------------------------------------------------------------------

    def sample(self) -> None:
        """Read every monitor once and integrate since its last good sample."""
        now = self.board.clock.monotonic()
        self.busbar.sample(now)
        if self.fan_meter is not None:
            self.fan_meter.sample(now)

    async def _sample_loop(self) -> None:
        while True:
            await self.board.clock.sleep(self.sample_seconds)
            self.sample()
            wall = time.monotonic()
            if wall - self._saved_at >= self.save_seconds:
                self._saved_at = wall
                try:
                    await asyncio.to_thread(self._save)
                except OSError as exc:
                    self._log.warning(f"rack energy not saved to {self._path}: {exc}")

    def polled(self) -> None:
        """Every BMC was just polled: count how long the busbar has disagreed with its parts."""
        gap, watts = self.unaccounted_watts(), self.busbar.watts
        if gap is None or watts is None:
            return
        if abs(gap) > max(MISMATCH_WATTS, MISMATCH_SHARE * watts):
            self._mismatched_polls += 1
        else:
            self._mismatched_polls = 0

    def unaccounted_watts(self) -> float | None:
        """Busbar reading minus what the units' BMCs and the fans' meter account for; None
        when a reading is missing (a meter lost, a BMC not answering, no fan meter)."""
        if self.busbar.watts is None or self.fan_meter is None or self.fan_meter.watts is None:
            return None
        units = 0.0
        for summary in self.units.values():
            if summary.power_state == "On":
                if summary.power_watts is None:
                    return None
                units += summary.power_watts
        return self.busbar.watts - units - self.fan_meter.watts

    # -- indicators and the display ------------------------------------------------------------

    def alerts(self) -> list[tuple[str, str]]:
        """Active alerts, worst first: (severity "Critical" or "Warning", short text)."""
        found: list[tuple[str, str]] = []
        if self.cooling_refused is not None:
            found.append(("Critical", "cooling config bad"))
        if not self.monitor_ok:
            found.append(("Critical", "busbar meter lost"))
        elif self.reading is not None:
            share = self.reading.watts / self.board.psu_rated_watts
            if share >= 1.0:
                found.append(("Critical", "busbar over budget"))
            elif share >= BUSBAR_WARNING_SHARE:
                found.append(("Warning", f"busbar at {share:.0%}"))
        gap = self.unaccounted_watts()
        if gap is not None and self._mismatched_polls >= MISMATCH_POLLS:
            found.append(("Warning", f"busbar {gap:+.1f} W unaccounted"))
        for state in self.cooling.zones.values():
            if state.mode is ZoneMode.FAILSAFE:
                found.append(("Warning", f"{state.zone.name} failsafe"))
        for name, fan in self.fans.items():
            if fan.duty_percent() > 0 and fan.rpm() < 0.05 * fan.rated_rpm:
                found.append(("Critical", f"{name} stalled"))
        for name, unit in sorted(self.units.items()):
            if unit.health == "Critical":
                found.append(("Critical", f"{name} critical"))
        found.sort(key=lambda alert: 0 if alert[0] == "Critical" else 1)
        return found

    def status_led(self) -> str:
        """The rack's status LED, as Redfish ``IndicatorLED`` words would say: Lit is trouble."""
        alerts = self.alerts()
        if not alerts:
            return "Off"
        return "Lit" if alerts[0][0] == "Critical" else "Blinking"

    def health(self) -> str:
        alerts = self.alerts()
        return alerts[0][0] if alerts else "OK"

    def display_lines(self) -> list[str]:
        """The front display: 8 rows of at most 21 characters."""
        watts = f"{self.reading.watts:5.1f}" if self.monitor_ok and self.reading else "  ---"
        on = sum(1 for unit in self.units.values() if unit.power_state == "On")
        alerts = self.alerts()
        zones = ", ".join(
            f"{s.setpoint_percent:.0f}%{'!' if s.mode is ZoneMode.FAILSAFE else ''}"
            for s in self.cooling.zones.values()
        )
        rows = [
            self.board.rack,
            f"Bus {watts}/{self.board.psu_rated_watts:.0f} W",
            f"Units on {on}/{len(self.units)}",
            f"Fans {zones or 'none'}",
            f"Energy {self.energy_joules / 3600.0:.2f} Wh",
            f"Alert {alerts[0][1]}" if alerts else "All OK",
            f"+{len(alerts) - 1} more" if len(alerts) > 1 else "",
            dt.datetime.now(dt.UTC).strftime("%H:%M:%S UTC"),
        ]
        return [row[:DISPLAY_COLUMNS] for row in rows][:DISPLAY_ROWS]


def _natural(name: str) -> tuple[str, int]:
    """``slot-10`` after ``slot-9``."""
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)
