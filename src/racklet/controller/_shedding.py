"""Load shedding: which running units to switch off when the busbar budget shrinks below
what the rack draws (a lower ``psuRatedWatts``, a PSU derated by a brown-out).

The rule, pure arithmetic: order the powered units by ``spec.powerPriority`` (lowest first),
then by slot (highest first: the top of the rack goes before the bottom at equal priority),
and shed from the front of that line until the measured draw of those left fits the budget.
A shed unit stays ``spec.power: On``: it waits in the busbar admission line
(``PowerBudget=False``) and is powered on again, by the same admission rule as any power-on,
when the budget returns. Units are shed, not capped: a Raspberry Pi has no power-capping
interface its BMC could set, so switching off is the only lever that exists on the hardware.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    name: str
    priority: int
    slot: int
    watts: float
    """Measured draw now (a unit booting counts at what it draws, not its ceiling: shedding
    answers what is on the busbar now)."""


def victims(powered: Iterable[Candidate], rated_watts: float) -> list[str]:
    """The units to shed, in order, so the rest draws at most ``rated_watts``."""
    line = sorted(powered, key=lambda c: (c.priority, -c.slot))
    total = sum(c.watts for c in line)
    shed: list[str] = []
    for candidate in line:
        if total <= rated_watts:
            break
        shed.append(candidate.name)
        total -= candidate.watts
    return shed
