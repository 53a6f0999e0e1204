"""The rack's cooling as declared data, and the PID arithmetic that serves it: no I/O here.

Shaped after OpenBMC's phosphor-pid-control. A **zone** is a set of fans and the temperature
sensors they cool. Each sensor has a *thermal* PID whose output is a fan-speed set-point (in
percent of rated speed); the zone takes the highest set-point (and never less than its
``min_percent``); a *fan* PID per fan then drives PWM so the tachometer reaches that speed
(feed-forward by the set-point itself, corrected by the speed error). A sensor that cannot be
read, reads NaN or infinity, or reads outside a physical range sends the whole zone to its
``failsafe_percent`` PWM at once (phosphor-pid-control's failsafe mode) until every sensor
reads again.

:class:`CoolingConfig` validates every gain and limit when it is built (a pydantic
``ValidationError``, turned into :class:`racklet.rmc.RmcConfigError` by
:func:`load_cooling`), so a bad configuration is refused before a fan ever turns.
What this deliberately does not do: slew-rate limits, hysteresis on the set-point, stepwise
(table) controllers; phosphor-pid-control has them, a scale model has not needed them yet.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from racklet.rmc.errors import RmcConfigError

MIN_CELSIUS = -40.0
MAX_CELSIUS = 150.0
"""Readings outside this range are a broken sensor, not a temperature (a lost sensor)."""


class PidGains(BaseModel):
    """One PID: gains, integral clamp and output clamp (phosphor-pid-control's ``pid`` block)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kp: float = Field(ge=0.0, le=100.0, description="proportional gain, output % per unit error")
    ki: float = Field(default=0.0, ge=0.0, le=10.0, description="integral gain, % per unit·s")
    kd: float = Field(default=0.0, ge=0.0, le=100.0, description="derivative gain, % per unit/s")
    i_min: float = Field(default=0.0, ge=-100.0, le=100.0, alias="iMin")
    i_max: float = Field(default=100.0, ge=-100.0, le=100.0, alias="iMax")
    out_min: float = Field(default=0.0, ge=0.0, le=100.0, alias="outMin")
    out_max: float = Field(default=100.0, ge=0.0, le=100.0, alias="outMax")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.i_min > self.i_max:
            raise ValueError(f"iMin {self.i_min} is above iMax {self.i_max}")
        if self.out_min >= self.out_max:
            raise ValueError(f"outMin {self.out_min} must be below outMax {self.out_max}")
        return self


class ThermalInput(BaseModel):
    """One sensor of a zone and the temperature its PID holds it at."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    sensor: str = Field(min_length=1)
    setpoint_celsius: float = Field(ge=0.0, le=110.0, alias="setpointCelsius")
    pid: PidGains


class Zone(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.-]+$")
    fans: list[str] = Field(min_length=1)
    inputs: list[ThermalInput] = Field(min_length=1)
    min_percent: float = Field(default=20.0, ge=0.0, le=100.0, alias="minPercent")
    """The lowest speed set-point the zone asks for (a fan never stops: 0 RPM means trouble)."""
    failsafe_percent: float = Field(default=100.0, gt=0.0, le=100.0, alias="failsafePercent")
    fan_pid: PidGains = Field(
        default_factory=lambda: PidGains(kp=0.5, ki=0.5, iMin=-30.0, iMax=30.0),
        alias="fanPid",
    )
    """Speed error (% of rated) to a PWM correction added to the set-point (feed-forward)."""

    @model_validator(mode="after")
    def _failsafe_covers(self) -> Self:
        if self.failsafe_percent < self.min_percent:
            raise ValueError(
                f"zone {self.name}: failsafePercent {self.failsafe_percent} is below "
                f"minPercent {self.min_percent}: failsafe must cool at least as hard"
            )
        if self.fan_pid.i_min > 0 or self.fan_pid.i_max < 0:
            raise ValueError(f"zone {self.name}: fanPid iMin..iMax must contain 0")
        return self


class CoolingConfig(BaseModel):
    """The rack's zones and the control period (``cooling.yaml`` beside the RMC's state)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    period_seconds: float = Field(default=1.0, ge=0.05, le=60.0, alias="periodSeconds")
    stale_after_periods: int = Field(default=30, ge=2, le=3600, alias="staleAfterPeriods")
    """A sensor whose reading has not changed for this many control periods is stuck (a
    real sensor's last bit always moves) and sends its zone to failsafe."""
    zones: list[Zone] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [zone.name for zone in self.zones]
        if len(set(names)) != len(names):
            raise ValueError(f"zone names must be unique: {names}")
        fans = [fan for zone in self.zones for fan in zone.fans]
        if len(set(fans)) != len(fans):
            raise ValueError(f"a fan belongs to one zone only: {fans}")
        return self


def parse_cooling(document: Any, origin: str = "cooling configuration") -> CoolingConfig:
    """Validate ``document``; a bad one is one :class:`RmcConfigError` naming the field."""
    try:
        return CoolingConfig.model_validate(document or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RmcConfigError(f"{origin}: {where}: {first['msg']}{more}") from exc


def load_cooling(path: Path) -> CoolingConfig:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RmcConfigError(f"cannot read cooling configuration {path}: {exc}") from exc
    return parse_cooling(document, str(path))


def default_cooling(sensors: list[str], fans: list[str]) -> CoolingConfig:
    """One zone over every fan and sensor, holding every unit's SoC at 60 °C."""
    if not sensors or not fans:
        return CoolingConfig()
    gains = PidGains(kp=4.0, ki=0.1, iMin=0.0, iMax=60.0)
    inputs = [ThermalInput(sensor=s, setpointCelsius=60.0, pid=gains) for s in sensors]
    return CoolingConfig(zones=[Zone(name="rack", fans=fans, inputs=inputs)])


def usable(reading: float | None) -> bool:
    """Whether a reading is a temperature at all (else its sensor counts as lost)."""
    return reading is not None and math.isfinite(reading) and MIN_CELSIUS <= reading <= MAX_CELSIUS


class Pid:
    """A discrete PID with a clamped integral (anti-windup) and clamped output.

    ``error`` is positive when more output is wanted (a thermal PID passes reading −
    set-point, a fan PID target − actual). The derivative acts on the error's change.
    """

    def __init__(self, gains: PidGains) -> None:
        self.gains = gains
        self.integral = 0.0
        self._last_error: float | None = None
        self.output = gains.out_min

    def reset(self) -> None:
        self.integral = 0.0
        self._last_error = None

    def step(self, error: float, seconds: float) -> float:
        g = self.gains
        dt = max(seconds, 1e-6)
        self.integral = min(g.i_max, max(g.i_min, self.integral + g.ki * error * dt))
        derivative = 0.0 if self._last_error is None else (error - self._last_error) / dt
        self._last_error = error
        raw = g.kp * error + self.integral + g.kd * derivative
        self.output = min(g.out_max, max(g.out_min, raw))
        return self.output
