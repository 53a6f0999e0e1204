"""The busbar budget that staggers power-on: how much the rack could draw if one more unit
started now.

Units still powering on or booting are counted at their ceiling (``MaxPowerWatts``), since
their inrush and boot peak are still to come; powered units that settled are counted at
their measured draw. :func:`projected_watts` is the rule over a list of draws;
:class:`Ledger` applies the same rule to a running total that is updated as each unit's draw
changes, so a power-on decision costs O(1) instead of a pass over the whole fleet (10,000
units powering on would otherwise cost 10,000² additions). Pure arithmetic; the reconciler
holds the lock that makes decide-then-power-on atomic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from racklet.api import Phase

_TRANSITIONAL: tuple[Phase, ...] = ("PoweringOn", "Booting")


@dataclass(frozen=True)
class Draw:
    """What one unit draws now, and at most."""

    phase: Phase
    powered: bool
    measured_watts: float
    max_watts: float | None


def _share(draw: Draw, candidate_max: float) -> float:
    """What ``draw`` adds to the projection; an unknown ceiling counts as the candidate's."""
    ceiling = draw.max_watts if draw.max_watts is not None else candidate_max
    if draw.phase in _TRANSITIONAL:
        return draw.measured_watts + max(0.0, ceiling - draw.measured_watts)
    if draw.powered:
        return draw.measured_watts
    return 0.0


def _measured(draw: Draw) -> float:
    return draw.measured_watts if draw.powered else 0.0


def projected_watts(others: Iterable[Draw], candidate_max: float) -> float:
    total = candidate_max
    for draw in others:
        total += _share(draw, candidate_max)
    return total


def _open(draw: Draw) -> bool:
    """Whether the draw's share depends on the candidate (transitional, ceiling unknown)."""
    return draw.phase in _TRANSITIONAL and draw.max_watts is None


class Ledger:
    """Every unit's latest :class:`Draw` and their running projected total.

    The total is kept exactly (as a :class:`~fractions.Fraction` of the float shares), so a
    million updates leave no rounding drift that could flip a decision at the rated limit.
    Draws whose share depends on the candidate (booting, ceiling unknown — rare) are kept
    apart and added per decision.
    """

    def __init__(self) -> None:
        self._draws: dict[str, Draw] = {}
        self._fixed = Fraction(0)
        self._open: dict[str, Draw] = {}
        self._measured = Fraction(0)

    def __contains__(self, name: object) -> bool:
        return name in self._draws

    def __len__(self) -> int:
        return len(self._draws)

    def get(self, name: str) -> Draw | None:
        return self._draws.get(name)

    def set(self, name: str, draw: Draw) -> bool:
        """Record ``name``'s draw; return whether that freed budget (its share fell)."""
        old = self.pop(name)
        self._draws[name] = draw
        self._measured += Fraction(_measured(draw))
        if _open(draw):
            self._open[name] = draw
        else:
            self._fixed += Fraction(_share(draw, 0.0))
        return old is not None and _share(draw, 0.0) < _share(old, 0.0)

    def pop(self, name: str) -> Draw | None:
        draw = self._draws.pop(name, None)
        if draw is None:
            return None
        self._measured -= Fraction(_measured(draw))
        if self._open.pop(name, None) is None:
            self._fixed -= Fraction(_share(draw, 0.0))
        return draw

    def measured(self) -> float:
        """What every powered unit draws now, by measurement (what shedding compares)."""
        return float(self._measured)

    def projected(self, candidate_max: float, *, excluding: str) -> float:
        """:func:`projected_watts` of every draw but ``excluding``'s, with this candidate."""
        total = self._fixed + Fraction(candidate_max)
        for name, draw in self._open.items():
            if name != excluding:
                total += Fraction(_share(draw, candidate_max))
        own = self._draws.get(excluding)
        if own is not None and excluding not in self._open:
            total -= Fraction(_share(own, 0.0))
        return float(total)
