"""Hardware profiles: what a kind of compute unit draws, how fast it boots, how it heats.

Profiles are data (``profiles/<name>.yaml``, every figure with its source in a comment); this
module only validates them. It does not model anything.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from racklet.twin.errors import TwinError


class UnitProfile(BaseModel):
    """The electrical, boot and thermal figures of one kind of unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    supply_volts: float = Field(gt=0)
    off_watts: float = Field(ge=0)
    boot_watts: float = Field(ge=0)
    idle_watts: float = Field(ge=0)
    full_load_watts: float = Field(ge=0)
    halted_watts: float = Field(ge=0)
    max_power_watts: float = Field(gt=0)
    rom_delay_seconds: float = Field(ge=0)
    os_boot_seconds: float = Field(ge=0)
    cores: int = Field(default=4, ge=1, le=1024)
    """CPU cores the board's OS sees (what the MicroVM scheduler may hand out)."""
    memory_mib: int = Field(default=4096, ge=64)
    """The board's memory, MiB (the OS keeps a share; the scheduler subtracts it)."""
    ambient_celsius: float = 25.0
    thermal_resistance_c_per_w: float = Field(gt=0)
    thermal_time_constant_seconds: float = Field(gt=0)
    fan_max_rpm: float = Field(default=8000.0, gt=0)
    fan_time_constant_seconds: float = Field(default=1.5, gt=0)
    fan_rated_watts: float = Field(default=0.0, ge=0, le=50)
    """The fan's draw at full speed (from the BMC board's supply, not the unit's)."""
    fan_thermal_resistance_c_per_w: float | None = Field(default=None, gt=0)
    """Thermal resistance with the fan at full speed; None: the fan does not help."""
    throttle_celsius: float = 80.0
    throttle_release_celsius: float = 77.0
    throttle_load_cap: float = Field(default=0.5, ge=0, le=1)
    cap_floor_load: float = Field(default=0.0, ge=0, le=1)
    """The share of (full - idle) a unit still draws with every core busy at its lowest
    clock: how far a power cap or an under-voltage throttle can hold it down."""
    monitor: Literal["pac1921", "ina219"] = "pac1921"
    sense_ohms: float = Field(default=0.01, gt=0)
    idle_spread: float = Field(default=0.0, ge=0, le=0.25)
    """Board-to-board spread of idle power: one standard deviation, relative (0.03 = 3 %).
    A unit's draw is drawn once per rack seed and clipped at two deviations."""
    full_load_spread: float = Field(default=0.0, ge=0, le=0.25)
    """The same for the full-load draw."""
    monitor_noise_lsb: float = Field(default=0.0, ge=0, le=16)
    """Noise at the power monitor's inputs, one standard deviation in ADC codes (LSB)."""
    temperature_lsb_celsius: float = Field(default=0.1, gt=0, le=5)
    """Resolution of the SoC's temperature sensor; it reads with one LSB of noise."""
    temperature_noise_lsb: float = Field(default=0.0, ge=0, le=16)
    inlet_rise_c_per_w: float = Field(default=0.0, ge=0, le=5)
    """Heat rises: how much warmer (°C) a unit's inlet air is per watt dissipated by the
    units below it, at the rack's nominal airflow (less airflow, more rise)."""

    @model_validator(mode="after")
    def _consistent(self) -> UnitProfile:
        if self.full_load_watts < self.idle_watts:
            raise ValueError("full_load_watts is below idle_watts")
        fan_r = self.fan_thermal_resistance_c_per_w
        if fan_r is not None and fan_r > self.thermal_resistance_c_per_w:
            raise ValueError("fan_thermal_resistance_c_per_w is above thermal_resistance_c_per_w")
        if self.throttle_release_celsius > self.throttle_celsius:
            raise ValueError("throttle_release_celsius is above throttle_celsius")
        return self


@cache
def load_profile(name: str) -> UnitProfile:
    """The packaged profile ``name`` (e.g. ``raspberry-pi-4``)."""
    if not name or "/" in name or name.startswith("."):
        raise TwinError(f"invalid profile name {name!r}")
    resource = resources.files("racklet.twin").joinpath("profiles", f"{name}.yaml")
    try:
        text = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise TwinError(f"unknown unit profile {name!r}") from exc
    try:
        return UnitProfile.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise TwinError(f"profile {name!r} is invalid: {exc}") from exc
