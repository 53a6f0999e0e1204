"""A first-order thermal model of one unit's SoC, with the firmware's throttle.

The SoC is one thermal mass behind one thermal resistance to ambient: at constant power it
settles at ``ambient + power × R`` with time constant τ. The step is the exact solution of
that equation, so it is stable for any step length (a fast ``--speed`` takes long steps).
Throttling has hysteresis: on at ``throttle_celsius``, off below ``release_celsius``.
A fan lowers the resistance: linearly from ``resistance`` (still air) to
``fan_resistance`` at full airflow, a simple estimate of forced convection.
"""

from __future__ import annotations

import math


class ThermalModel:
    def __init__(
        self,
        ambient_celsius: float,
        resistance_c_per_w: float,
        time_constant_seconds: float,
        throttle_celsius: float,
        release_celsius: float,
        fan_resistance_c_per_w: float | None = None,
    ) -> None:
        self.ambient = ambient_celsius
        self.resistance = resistance_c_per_w
        self.fan_resistance = (
            resistance_c_per_w if fan_resistance_c_per_w is None else fan_resistance_c_per_w
        )
        self.time_constant = time_constant_seconds
        self.throttle_celsius = throttle_celsius
        self.release_celsius = release_celsius
        self.temperature = ambient_celsius
        self.throttled = False

    def resistance_at(self, airflow: float) -> float:
        """Thermal resistance (°C/W) with the fan moving ``airflow`` (0 to 1) of its rated air."""
        share = min(1.0, max(0.0, airflow))
        return self.resistance + (self.fan_resistance - self.resistance) * share

    def step(self, power_watts: float, seconds: float, airflow: float = 0.0) -> None:
        """Advance by ``seconds`` at constant ``power_watts`` and fan ``airflow``."""
        if seconds <= 0:
            return
        steady = self.ambient + power_watts * self.resistance_at(airflow)
        decay = math.exp(-seconds / self.time_constant)
        self.temperature = steady + (self.temperature - steady) * decay
        if self.temperature >= self.throttle_celsius:
            self.throttled = True
        elif self.temperature < self.release_celsius:
            self.throttled = False
