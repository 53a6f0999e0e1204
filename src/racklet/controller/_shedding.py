"""Capping and shedding: which powered units to hold down, and which to switch off, when the
busbar budget shrinks below what the rack asks for (a lower ``psuRatedWatts``, a PSU derated
by a brown-out).

The rule, pure arithmetic. The line is the powered units ordered by ``spec.powerPriority``
(lowest first), then by slot (highest first: the top of the rack goes before the bottom at
equal priority). The target is the budget less a guard band (:data:`GUARD`: the rack's own
fans and the lag between a look and the next are on the same busbar).

1. **Shed** from the front of the line while even every remaining unit held at its floor
   (the lowest cap its BMC takes; a unit without a cap counts at what it draws) would not
   fit the target.
2. **Cap** the rest from the front of the line, each down towards its floor and only as far
   as the excess needs, so a higher-priority unit is capped only when every lower one is at
   its floor.

A unit's *demand* is what it draws, unless something holds it back — its own cap (it draws
at the cap) or the busbar's sag (its BMC says ``Override``) — then its ceiling: the meter no
longer shows what it wants, so the plan assumes the worst and lifts a cap only when even that
fits. So caps come off when the budget returns, without the rack swinging between capped and
over budget. A shed unit stays ``spec.power: On``: it waits in the busbar admission line
(``PowerBudget=False``) and is powered on again, by the same admission rule as any power-on,
when the budget returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

GUARD = 0.1
"""The share of the budget capping keeps free for the rack fans and the reaction's lag."""
PRESSING = 0.03
"""A capped unit within this share of its cap is taken to be held back by it."""


@dataclass(frozen=True)
class Candidate:
    name: str
    priority: int
    slot: int
    watts: float
    """Measured draw now (a unit booting counts at what it draws, not its ceiling: shedding
    answers what is on the busbar now)."""
    floor: float | None = None
    """The lowest cap its BMC accepts; None: it cannot be capped."""
    ceiling: float | None = None
    """The most it draws uncapped (the cap's ``AllowableMax``)."""
    limit: float | None = None
    """The cap in force, None when uncapped."""
    overridden: bool = False
    """The busbar's sag holds it at its floor (its BMC says ``Override``)."""

    @property
    def demand(self) -> float:
        """What it would draw with no cap and no sag (see the module docstring)."""
        held = self.overridden or (
            self.limit is not None and self.watts >= self.limit * (1.0 - PRESSING)
        )
        if held and self.ceiling is not None:
            return max(self.watts, self.ceiling)
        return self.watts

    @property
    def lowest(self) -> float:
        """The least it can be made to draw without switching it off."""
        if self.floor is None:
            return self.demand
        return min(self.demand, self.floor)


@dataclass(frozen=True)
class Plan:
    shed: list[str] = field(default_factory=list)
    caps: dict[str, float] = field(default_factory=dict)
    """The units to cap, and at what; every other powered unit is uncapped."""
    demand: float = 0.0
    """What the powered units ask for in all (the figure the events quote)."""


def plan(powered: Iterable[Candidate], budget: float, guard: float = GUARD) -> Plan:
    """Who to shed and whom to cap at what, so the rest fits ``budget`` less the guard."""
    line = sorted(powered, key=lambda c: (c.priority, -c.slot))
    demand = sum(c.demand for c in line)
    target = budget * (1.0 - guard)
    if demand <= budget and not any(c.limit is not None or c.overridden for c in line):
        return Plan(demand=demand)  # nothing capped and it fits: leave it be
    if demand <= target:
        return Plan(demand=demand)
    shed: list[str] = []
    floors = sum(c.lowest for c in line)
    left = demand
    for candidate in line:
        if floors <= target:
            break
        shed.append(candidate.name)
        floors -= candidate.lowest
        left -= candidate.demand
    caps: dict[str, float] = {}
    excess = left - target
    for candidate in line:
        if excess <= 0:
            break
        if candidate.name in shed:
            continue
        cut = min(candidate.demand - candidate.lowest, excess)
        if cut > 0:
            caps[candidate.name] = candidate.demand - cut
            excess -= cut
    return Plan(shed, caps, demand)


def victims(powered: Iterable[Candidate], rated_watts: float) -> list[str]:
    """The units to shed, in order, so the rest draws at most ``rated_watts`` (no guard)."""
    return plan(powered, rated_watts, guard=0.0).shed
