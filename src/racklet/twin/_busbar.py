"""The busbar: one PSU of rated power feeding every unit's DC/DC.

It only sums draws and decides whether the PSU holds; what an overload does to the units (a
brown-out resets every powered unit) is the rack's business, which calls :meth:`settle`.
"""

from __future__ import annotations

from collections.abc import Iterable

from racklet.log import get_logger


class Busbar:
    def __init__(self, rated_watts: float, volts: float) -> None:
        self.rated_watts = rated_watts
        self.volts = volts
        self.power_watts = 0.0
        self.energy_joules = 0.0
        self.brownouts = 0
        self._log = get_logger("twin")

    def settle(self, draws: Iterable[float], seconds: float) -> bool:
        """Account ``seconds`` of the given draws; True when the PSU browned out."""
        self.power_watts = sum(draws)
        self.energy_joules += self.power_watts * max(0.0, seconds)
        if self.power_watts <= self.rated_watts:
            return False
        self.brownouts += 1
        self._log.warning(
            f"busbar brown-out #{self.brownouts}: {self.power_watts:.2f} W drawn from a "
            f"{self.rated_watts:.1f} W PSU; every powered unit resets"
        )
        return True
