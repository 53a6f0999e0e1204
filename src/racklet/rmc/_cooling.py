"""The RMC's fan control: the zones of :mod:`racklet.rmc._pid` run against the HAL's fans.

Every control period each zone reads its sensors once, asks each sensor's thermal PID for a
speed set-point, takes the highest, and drives each fan's PWM through its fan PID from the
tachometer. One lost sensor (unreadable, NaN, out of range) puts the zone in **Failsafe** in
that same step, and so does a stale one, whose reading has not changed for
``staleAfterPeriods`` control periods (a stuck converter: a live sensor's last bit moves):
every fan of the zone at ``failsafe_percent`` PWM, a ``SensorEvent``
(``SensorFailure`` or ``InvalidSensorReading``) per lost sensor and an ``Environmental``
``FanGroupWarning`` for the zone in the RMC's EventLog. When every sensor reads again the
zone returns to **Normal** (``SensorRestored``, ``FanGroupNormal``). The same code drives real
PWM on hardware: it sees only :class:`racklet.hw.Fan` and :class:`racklet.hw.TemperatureSensor`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from racklet.bmc.login import EventBus
from racklet.hw import Clock, Fan, TemperatureSensor
from racklet.log import ContextLogger
from racklet.rmc._pid import CoolingConfig, Pid, Zone, usable
from racklet.rmc.errors import RmcConfigError

SENSOR_EVENT = "SensorEvent.1.1"
ENVIRONMENTAL = "Environmental.1.4"


class ZoneMode(enum.StrEnum):
    NORMAL = "Normal"
    FAILSAFE = "Failsafe"


@dataclass
class ZoneState:
    """What one zone did in its last step (for Redfish, metrics and ``racklet top``)."""

    zone: Zone
    mode: ZoneMode = ZoneMode.NORMAL
    setpoint_percent: float = 0.0
    """The zone's fan-speed set-point (% of rated speed): the highest thermal PID output."""
    readings: dict[str, float | None] = field(default_factory=dict)
    demands: dict[str, float] = field(default_factory=dict)
    """Each sensor's PID output (% of rated speed) in the last normal step."""
    lost: set[str] = field(default_factory=set)
    failsafe_entries: int = 0
    unchanged: dict[str, int] = field(default_factory=dict)
    """For how many periods in a row each sensor has read the same value."""
    stale: set[str] = field(default_factory=set)


class CoolingController:
    """Runs every zone of a :class:`CoolingConfig` over named fans and sensors."""

    def __init__(
        self,
        config: CoolingConfig,
        fans: Mapping[str, Fan],
        sensors: Mapping[str, TemperatureSensor],
        clock: Clock,
        events: EventBus,
        log: ContextLogger,
        origin: str = "",
    ) -> None:
        for zone in config.zones:
            missing = [f for f in zone.fans if f not in fans] + [
                i.sensor for i in zone.inputs if i.sensor not in sensors
            ]
            if missing:
                raise RmcConfigError(
                    f"cooling zone {zone.name} names what the rack does not have: {missing} "
                    f"(fans: {sorted(fans)}, sensors: {sorted(sensors)})"
                )
        self.config = config
        self.zones = {zone.name: ZoneState(zone) for zone in config.zones}
        self._fans = fans
        self._sensors = sensors
        self._clock = clock
        self._events = events
        self._log = log
        self._origin = origin
        self._thermal = {
            (zone.name, i.sensor): Pid(i.pid) for zone in config.zones for i in zone.inputs
        }
        self._fan_pids = {
            (zone.name, f): Pid(zone.fan_pid) for zone in config.zones for f in zone.fans
        }
        self._last: float | None = None

    def step(self) -> None:
        """One control period for every zone."""
        now = self._clock.monotonic()
        seconds = self.config.period_seconds if self._last is None else now - self._last
        self._last = now
        for state in self.zones.values():
            self._step_zone(state, seconds)

    def _read(self, name: str) -> float | None:
        try:
            value = self._sensors[name].read_celsius()
        except (OSError, ValueError) as exc:
            self._log.warning(f"cooling: sensor {name} unreadable: {exc}")
            return None
        return float(value)

    def _step_zone(self, state: ZoneState, seconds: float) -> None:
        zone = state.zone
        previous = state.readings
        state.readings = {i.sensor: self._read(i.sensor) for i in zone.inputs}
        for name, value in state.readings.items():
            same = value is not None and previous.get(name) == value
            state.unchanged[name] = state.unchanged.get(name, 0) + 1 if same else 0
        stale = {
            name
            for name, periods in state.unchanged.items()
            if periods >= self.config.stale_after_periods
        }
        lost = {name for name, value in state.readings.items() if not usable(value)} | stale
        self._report(state, lost, stale)
        if lost:
            for fan in zone.fans:
                self._fan_pids[(zone.name, fan)].reset()
                self._drive(fan, zone.failsafe_percent)
            state.setpoint_percent = zone.failsafe_percent
            return
        demands = {}
        for i in zone.inputs:
            reading = state.readings[i.sensor]
            assert reading is not None  # every sensor is usable here
            demands[i.sensor] = self._thermal[(zone.name, i.sensor)].step(
                reading - i.setpoint_celsius, seconds
            )
        state.demands = demands
        target = max(zone.min_percent, *demands.values())
        state.setpoint_percent = target
        for name in zone.fans:
            driven = self._fans[name]
            try:
                actual = 100.0 * driven.rpm() / driven.rated_rpm
            except OSError:
                actual = target  # no tachometer: feed-forward only
            trim = self._fan_pids[(zone.name, name)].step(target - actual, seconds)
            self._drive(name, min(100.0, max(0.0, target + trim)))

    def _drive(self, name: str, percent: float) -> None:
        try:
            self._fans[name].set_duty_percent(percent)
        except (OSError, ValueError) as exc:
            self._log.warning(f"cooling: fan {name}: cannot set {percent:.0f} %: {exc}")

    def _report(self, state: ZoneState, lost: set[str], stale: set[str]) -> None:
        """Events for every change of a sensor's and the zone's health."""
        zone = state.zone
        for name in sorted(stale - state.stale):
            self._log.warning(
                f"cooling: sensor {name} stale: it read {state.readings[name]} for "
                f"{state.unchanged[name]} control periods in a row"
            )
        state.stale = stale
        for name in sorted(lost - state.lost):
            value = state.readings[name]
            if name in stale:
                self._publish(
                    f"{SENSOR_EVENT}.SensorFailure", (name,), "Warning", f"Sensor '{name}' failed."
                )
            elif value is not None and (math.isnan(value) or not usable(value)):
                self._publish(
                    f"{SENSOR_EVENT}.InvalidSensorReading",
                    (name,),
                    "Warning",
                    f"Invalid reading received from sensor '{name}'.",
                )
            else:
                self._publish(
                    f"{SENSOR_EVENT}.SensorFailure", (name,), "Warning", f"Sensor '{name}' failed."
                )
        for name in sorted(state.lost - lost):
            self._publish(
                f"{SENSOR_EVENT}.SensorRestored", (name,), "OK", f"Sensor '{name}' was restored."
            )
        if lost and state.mode is ZoneMode.NORMAL:
            state.mode = ZoneMode.FAILSAFE
            state.failsafe_entries += 1
            self._log.warning(
                f"cooling zone {zone.name}: failsafe at {zone.failsafe_percent:.0f} % "
                f"(lost: {', '.join(sorted(lost))})"
            )
            self._publish(
                f"{ENVIRONMENTAL}.FanGroupWarning",
                (zone.name,),
                "Warning",
                f"Fan group '{zone.name}' is in a warning state.",
            )
        elif not lost and state.mode is ZoneMode.FAILSAFE:
            state.mode = ZoneMode.NORMAL
            self._log.info(f"cooling zone {zone.name}: every sensor reads again, back to normal")
            self._publish(
                f"{ENVIRONMENTAL}.FanGroupNormal",
                (zone.name,),
                "OK",
                f"Fan group '{zone.name}' is operating normally.",
            )
        state.lost = lost

    def _publish(self, message_id: str, args: tuple[str, ...], severity: str, text: str) -> None:
        self._events.publish(message_id, text, args, severity, self._origin)

    async def run(self) -> None:
        """Step every ``period_seconds`` on the board's clock, until cancelled."""
        while True:
            self.step()
            await self._clock.sleep(self.config.period_seconds)
