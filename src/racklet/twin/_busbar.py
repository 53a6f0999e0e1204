"""The busbar: one PSU of rated power feeding every unit's DC/DC.

It only sums draws and decides whether the PSU holds; what an overload does to the units (a
sag throttles them, a brown-out resets every powered unit) is the rack's business, which calls
:meth:`settle`.

It keeps the ground truth tests and teachers check the rack against: every settled step in
:attr:`samples` (the last ``SAMPLES`` of them, an hour at the rack's 0.1 s tick), the highest
draw it ever carried (:attr:`peak_watts`), the most the draw ever stood above the rating then
in force (:attr:`peak_over_watts`), and the last overloads (:attr:`overloads`, each settle
whose draw passed the rating, kept beyond the samples' hour). ``nominal_watts`` is the PSU's
own rating; a brown-out fault lowers ``rated_watts`` below it for a while, so an overload
recorded at the nominal rating is one the rack's power management let happen, not one a fault
forced.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

from racklet.log import get_logger

SAMPLES = 36_000
OVERLOADS_KEPT = 1024


class BusbarSample(NamedTuple):
    """One settle: when (simulated seconds since start), what was drawn, what the PSU rated."""

    at: float
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
        self.sags = 0
        """Steps in which the demand was above the rating and the units throttled."""
        self.elapsed = 0.0
        self.samples: deque[BusbarSample] = deque(maxlen=SAMPLES)
        self.peak_over_watts = 0.0
        self.overloads: deque[BusbarSample] = deque(maxlen=OVERLOADS_KEPT)
        self._log = get_logger("twin")

    def settle(self, draws: Iterable[float], seconds: float) -> bool:
        """Account ``seconds`` of the given draws; True when the PSU browned out."""
        self.power_watts = sum(draws)
        self.peak_watts = max(self.peak_watts, self.power_watts)
        self.energy_joules += self.power_watts * max(0.0, seconds)
        self.elapsed += max(0.0, seconds)
        sample = BusbarSample(self.elapsed, self.power_watts, self.rated_watts)
        self.samples.append(sample)
        self.peak_over_watts = max(self.peak_over_watts, self.power_watts - self.rated_watts)
        if self.power_watts <= self.rated_watts:
            return False
        self.brownouts += 1
        self.overloads.append(sample)
        self._log.warning(
            f"busbar brown-out #{self.brownouts}: {self.power_watts:.2f} W drawn from a "
            f"{self.rated_watts:.1f} W PSU; every powered unit resets"
        )
        return True
