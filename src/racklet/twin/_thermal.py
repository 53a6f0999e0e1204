"""A first-order thermal model of one unit's SoC, with the firmware's throttle.

The SoC is one thermal mass behind one thermal resistance to ambient: at constant power it
settles at ``ambient + power × R`` with time constant τ. The step is the exact solution of
that equation, so it is stable for any step length (a fast ``--speed`` takes long steps).
Throttling has hysteresis: on at ``throttle_celsius``, off below ``release_celsius``.
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
    ) -> None:
        self.ambient = ambient_celsius
        self.resistance = resistance_c_per_w
        self.time_constant = time_constant_seconds
        self.throttle_celsius = throttle_celsius
        self.release_celsius = release_celsius
        self.temperature = ambient_celsius
        self.throttled = False

    def step(self, power_watts: float, seconds: float) -> None:
        """Advance by ``seconds`` at constant ``power_watts``."""
        if seconds <= 0:
            return
        steady = self.ambient + power_watts * self.resistance
        decay = math.exp(-seconds / self.time_constant)
        self.temperature = steady + (self.temperature - steady) * decay
        if self.temperature >= self.throttle_celsius:
            self.throttled = True
        elif self.temperature < self.release_celsius:
            self.throttled = False
