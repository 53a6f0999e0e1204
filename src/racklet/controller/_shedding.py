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

**Hysteresis: caps tighten at once and loosen only on settled readings.** A plan is only as
good as the draws it adds up, and those lag: a BMC's reading is its last sample, and the
controller knows each other unit's draw from that unit's last look. Right after a change of
the caps (or while the busbar sags) the sum mixes draws from before with draws from after —
a unit still shown at the floor the sag held it to, while it draws full power again — and
looks like it fits. Lifting a cap on such a sum starts the next sag, and the cap comes back:
the oscillation this rule ends. So when the readings are not *settled* (see
:meth:`BusbarAdmission.govern <racklet.controller.reconcilers._admission.BusbarAdmission>`:
every powered unit looked at again after the last change, plus one BMC sampling period) a
cap in force may move down, never up, and is never lifted (:attr:`Plan.held`). Why evidence
and not a margin below the target: the error of a stale reading is as large as a unit's
whole range (its ceiling less its floor), so a margin wide enough for it would keep caps on
long after the budget came back; and why not a fixed dwell time: the age of a reading is set
by how busy the controller is, which no constant knows.
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
    target: float = 0.0
    """What the plan fits them into: the budget less the guard band."""
    held: frozenset[str] = frozenset()
    """Units whose cap in force stays although the readings alone would raise or lift it:
    they are not settled yet (see the module docstring)."""


def plan(
    powered: Iterable[Candidate], budget: float, guard: float = GUARD, *, settled: bool = True
) -> Plan:
    """Who to shed and whom to cap at what, so the rest fits ``budget`` less the guard.

    ``settled``: whether every draw was read after the last change of the caps; if not, no cap
    in force is raised or lifted (the module docstring says why).
    """
    line = sorted(powered, key=lambda c: (c.priority, -c.slot))
    demand = sum(c.demand for c in line)
    target = budget * (1.0 - guard)
    if demand <= budget and not any(c.limit is not None or c.overridden for c in line):
        return Plan(demand=demand, target=target)  # nothing capped and it fits: leave it be
    shed, caps = _fit(line, demand, target)
    held: set[str] = set()
    if not settled:
        for candidate in line:
            limit = candidate.limit
            if limit is None or candidate.name in shed:
                continue
            if caps.get(candidate.name, float("inf")) > limit:
                caps[candidate.name] = limit
                held.add(candidate.name)
    return Plan(shed, caps, demand, target, frozenset(held))


def _fit(line: list[Candidate], demand: float, target: float) -> tuple[list[str], dict[str, float]]:
    """The units to shed and the caps, from the front of ``line``, so it fits ``target``."""
    if demand <= target:
        return [], {}
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
    return shed, caps


def victims(powered: Iterable[Candidate], rated_watts: float) -> list[str]:
    """The units to shed, in order, so the rest draws at most ``rated_watts`` (no guard)."""
    return plan(powered, rated_watts, guard=0.0).shed
