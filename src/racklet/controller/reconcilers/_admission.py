"""Busbar admission: whether one more unit may power on now, and who waits in line.

One :class:`BusbarAdmission` per rack. It keeps the rack's units' latest draws in a
:class:`~racklet.controller._budget.Ledger` (the arithmetic lives there) and admits a power-on
only if the projected draw stays within ``Rack.spec.psuRatedWatts``; the decision and the
power-on it allows happen under one lock, so two units cannot both take the last watts.
Refused units queue in the order they were refused; as soon as a draw falls (a unit settled
from its boot ceiling to its measured draw, or went off, or was deleted) the first in line
is woken (``wake``, the runtime's enqueue), and each unit powered on wakes the next, so a
freed budget is used at once instead of at the next resync (200 s at 10,000 units).

Only the rack's own units count (:func:`racklet.api.rack_of`): a second Rack in the same
store keeps its own ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from racklet.api import ComputeUnit, ComputeUnitStatus, Rack
from racklet.controller._budget import Draw, Ledger
from racklet.controller._phase import Observation
from racklet.controller._shedding import Candidate, victims
from racklet.redfish import ChassisView
from racklet.store import NotFound, Store

DEFAULT_MAX_WATTS = 10.0  # a unit whose BMC does not say MaxPowerWatts
_DRAWING = ("On", "PoweringOn", "PoweringOff")
"""Power states in which a unit draws from the busbar: one its BMC is still shutting down
(phase Off, reason PoweringOff) counts at its measured watts until the BMC says Off."""


class BusbarAdmission:
    def __init__(
        self,
        store: Store,
        rack_name: str,
        *,
        member: Callable[[ComputeUnit], bool],
        wake: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self.rack_name = rack_name
        self._member = member  # whether a unit is this rack's (to seed the ledger)
        self._wake = wake
        self._line: dict[str, None] = {}  # refused power-ons, oldest first
        self._lock = asyncio.Lock()
        self._draws = Ledger()  # every unit's latest draw: the running total
        self._seeded = False  # whether units not observed yet were taken from their status

    def leave_line(self, name: str) -> None:
        """A unit being looked at again leaves the line (it rejoins if refused again)."""
        self._line.pop(name, None)

    def note(self, name: str, phase: str, obs: Observation) -> None:
        """Record what ``name`` draws now, as just observed; wake the line if that freed budget."""
        if obs.system is None or obs.chassis is None:
            return  # unreachable: keep the last known draw, the unit may still be on
        measured = obs.environment.power_watts if obs.environment else None
        draw = Draw(
            phase=phase,  # type: ignore[arg-type]
            powered=obs.system.power_state in _DRAWING,
            measured_watts=measured or 0.0,
            max_watts=obs.chassis.max_power_watts,
        )
        if self._draws.get(name) != draw and self._draws.set(name, draw):
            self._wake_next()

    def forget(self, name: str) -> None:
        """A unit deleted (or moved to another rack): its draw no longer counts."""
        self._line.pop(name, None)
        if self._draws.pop(name) is not None:
            self._wake_next()

    async def admit(
        self, name: str, chassis: ChassisView, power_on: Callable[[], Awaitable[None]]
    ) -> tuple[bool, str]:
        """Call ``power_on`` if the budget holds ``name`` too, else put it in line.

        Returns whether it was admitted and the projection as a message. The draw of an
        admitted unit is reserved at its ceiling until a look shows it powered.
        """
        async with self._lock:
            allowed, message = await self._allows(name, chassis)
            if not allowed:
                self._line[name] = None
                return False, message
            await power_on()
            self._draws.set(
                name,
                Draw(
                    phase="PoweringOn",
                    powered=True,
                    measured_watts=0.0,
                    max_watts=chassis.max_power_watts,
                ),
            )
        self._wake_next()  # the budget may hold one more: let the next in line look
        return True, message

    async def shed(self, unit: ComputeUnit, power_off: Callable[[], Awaitable[None]]) -> str | None:
        """Call ``power_off`` if the rack's measured draw is over its rating and ``unit`` is
        among the lowest-priority powered units whose loss brings it back within
        (:func:`racklet.controller._shedding.victims`); return why, or None if it stays on.
        The unit then waits in line and powers on through :meth:`admit` when budget returns."""
        name = unit.metadata.name
        try:
            rated = (await self._store.get(Rack, self.rack_name)).spec.psu_rated_watts
        except NotFound:
            return None
        if not self._seeded:
            await self._seed()
        if self._draws.measured() <= rated:
            return None
        powered = []
        for other in await self._store.list(ComputeUnit):
            draw = self._draws.get(other.metadata.name)
            if self._member(other) and draw is not None and draw.powered:
                powered.append(
                    Candidate(
                        other.metadata.name,
                        other.spec.power_priority,
                        other.spec.slot,
                        draw.measured_watts,
                    )
                )
        drawn = sum(c.watts for c in powered)
        if name not in victims(powered, rated):
            return None
        async with self._lock:
            await power_off()
            previous = self._draws.get(name)
            ceiling = previous.max_watts if previous is not None else None
            self._draws.set(name, Draw("Off", False, 0.0, ceiling))
        self._line[name] = None
        return (
            f"shed: the rack drew {drawn:.2f} W of a {rated:.2f} W budget; power priority "
            f"{unit.spec.power_priority} is among the lowest powered"
        )

    def _wake_next(self) -> None:
        """Wake the unit first in line, if any."""
        if self._wake is not None and self._line:
            self._wake(next(iter(self._line)))

    async def _allows(self, name: str, chassis: ChassisView) -> tuple[bool, str]:
        try:
            rack = await self._store.get(Rack, self.rack_name)
        except NotFound:
            return True, f"no rack {self.rack_name!r} declared: no busbar budget to keep"
        rated = rack.spec.psu_rated_watts
        candidate = chassis.max_power_watts or DEFAULT_MAX_WATTS
        if not self._seeded:
            await self._seed()
        projected = self._draws.projected(candidate, excluding=name)
        message = f"projected {projected:.2f} W of {rated:.2f} W rated"
        return projected <= rated, message

    async def _seed(self) -> None:
        """Count the rack's units not observed yet by what their status last said (once:
        from then on every reconcile keeps the ledger current, so a decision needs no list)."""
        for other in await self._store.list(ComputeUnit):
            if self._member(other) and other.metadata.name not in self._draws:
                self._draws.set(other.metadata.name, _draw_from_status(other.status))
        self._seeded = True


def _draw_from_status(status: ComputeUnitStatus) -> Draw:
    return Draw(
        phase=status.phase,
        powered=status.power_state in _DRAWING,
        measured_watts=status.power_watts or 0.0,
        max_watts=None,
    )
