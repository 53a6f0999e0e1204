"""The busbar budget that staggers power-on: how much the rack could draw if one more unit
started now.

Units still powering on or booting are counted at their ceiling (``MaxPowerWatts``), since
their inrush and boot peak are still to come; powered units that settled are counted at
their measured draw. Pure arithmetic; the reconciler holds the lock that makes
decide-then-power-on atomic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from racklet.api import Phase

_TRANSITIONAL: tuple[Phase, ...] = ("PoweringOn", "Booting")


@dataclass(frozen=True)
class Draw:
    """What one unit draws now, and at most."""

    phase: Phase
    powered: bool
    measured_watts: float
    max_watts: float | None


def projected_watts(others: Iterable[Draw], candidate_max: float) -> float:
    total = candidate_max
    for draw in others:
        ceiling = draw.max_watts if draw.max_watts is not None else candidate_max
        if draw.phase in _TRANSITIONAL:
            total += draw.measured_watts + max(0.0, ceiling - draw.measured_watts)
        elif draw.powered:
            total += draw.measured_watts
    return total
