"""The busbar: one PSU of rated power feeding every unit's DC/DC.

It only sums draws and decides whether the PSU holds; what an overload does to the units (a
brown-out resets every powered unit) is the rack's business, which calls :meth:`settle`.

It keeps its own record, as ground truth for tests and teachers: the highest draw it ever
carried (``peak_watts``) and the last overloads (``overloads``: each settle whose draw passed
the rating then in force, with that rating). ``nominal_watts`` is the PSU's own rating; a
brown-out fault lowers ``rated_watts`` below it for a while, so an overload recorded at the
nominal rating is one the rack's power management let happen, not one a fault forced.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from racklet.log import get_logger

OVERLOADS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class BusbarSample:
    """One settle of the busbar: what was drawn and what the PSU delivered then."""

    watts: float
    rated_watts: float


class Busbar:
    def __init__(self, rated_watts: float, volts: float) -> None:
        self.rated_watts = rated_watts
        self.nominal_watts = rated_watts
        self.volts = volts
        self.power_watts = 0.0
        self.peak_watts = 0.0
        self.energy_joules = 0.0
        self.brownouts = 0
        self.overloads: deque[BusbarSample] = deque(maxlen=OVERLOADS_KEPT)
        self._log = get_logger("twin")

    def settle(self, draws: Iterable[float], seconds: float) -> bool:
        """Account ``seconds`` of the given draws; True when the PSU browned out."""
        self.power_watts = sum(draws)
        self.peak_watts = max(self.peak_watts, self.power_watts)
        self.energy_joules += self.power_watts * max(0.0, seconds)
        if self.power_watts <= self.rated_watts:
            return False
        self.brownouts += 1
        self.overloads.append(BusbarSample(self.power_watts, self.rated_watts))
        self._log.warning(
            f"busbar brown-out #{self.brownouts}: {self.power_watts:.2f} W drawn from a "
            f"{self.rated_watts:.1f} W PSU; every powered unit resets"
        )
        return True
