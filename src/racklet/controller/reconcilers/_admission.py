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

When the budget shrinks below what the powered units ask for, :meth:`govern` tells each unit
its part of the plan (:mod:`racklet.controller._shedding`): capped at so many watts, shed, or
uncapped. The budget is ``Rack.spec.psuRatedWatts``, or less while an Active ``BrownOut``
Fault derates the PSU (its ``params.watts``): the one hardware side a controller drives is its
rack, so a brown-out there is this rack's. A cap in force is raised or lifted only on settled
readings (the hysteresis of :mod:`racklet.controller._shedding`): the admission notes when
it last changed a cap or saw the busbar sag, and when it last looked at each unit, on the
reconciler's clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from racklet.api import ComputeUnit, ComputeUnitStatus, Fault, Rack
from racklet.controller._budget import Draw, Ledger
from racklet.controller._phase import Observation
from racklet.controller._shedding import Candidate, plan
from racklet.redfish import ChassisView, PowerLimitView
from racklet.store import NotFound, Store

DEFAULT_MAX_WATTS = 10.0  # a unit whose BMC does not say MaxPowerWatts
BROWNOUT_TTL_SECONDS = 0.5
"""How stale the list of active brown-outs may be (half the controller's default resync)."""
CAP_STEP_WATTS = 0.25
"""A cap within this of the planned one is left as it is (no PATCH for the meters' noise);
below the PAC1921's ~40 mW steps times the rack's units, above a fraction of a Pi's range."""
SETTLE_SECONDS = 1.0
"""How long after a change a look must come for its reading to count as settled: a BMC's
reading is its last sample (every 0.5 s of its clock on a Racklet BMC; --speed times less
wall time on the twin), and the cap's PATCH lands a moment after the plan that chose it."""
PATIENCE_SECONDS = 30.0
"""How long caps wait for a unit not looked at since the change (its BMC does not answer)
before its last known draw is taken as settled: no cap is held forever by one silent BMC."""
_DRAWING = ("On", "PoweringOn", "PoweringOff")
"""Power states in which a unit draws from the busbar: one its BMC is still shutting down
(phase Off, reason PoweringOff) counts at its measured watts until the BMC says Off."""


@dataclass(frozen=True)
class Budget:
    watts: float
    why: str
    """Where it comes from, for events: the rating, or the brown-out that derates it."""


@dataclass(frozen=True)
class Verdict:
    """One unit's part of the plan: ``shed``, ``cap`` (at ``watts``), ``hold`` (its cap in
    force stays) or ``uncap``."""

    action: str
    message: str
    watts: float | None = None
    adjusted: bool = False
    """A cap already in force moved (no new event: the condition's message says it)."""


class BusbarAdmission:
    def __init__(
        self,
        store: Store,
        rack_name: str,
        *,
        member: Callable[[ComputeUnit], bool],
        wake: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._seen: dict[str, float] = {}  # when each unit was last looked at
        self._changed: float | None = None  # when a cap last changed or the busbar sagged
        self.rack_name = rack_name
        self._member = member  # whether a unit is this rack's (to seed the ledger)
        self._wake = wake
        self._line: dict[str, None] = {}  # refused power-ons, oldest first
        self._lock = asyncio.Lock()
        self._draws = Ledger()  # every unit's latest draw: the running total
        self._limits: dict[str, PowerLimitView | None] = {}  # each unit's cap, as last seen
        self._brownout_cache: tuple[float, list[tuple[str, float]]] | None = None
        self._seeded = False  # whether units not observed yet were taken from their status

    def leave_line(self, name: str) -> None:
        """A unit being looked at again leaves the line (it rejoins if refused again)."""
        self._line.pop(name, None)

    def note(self, name: str, phase: str, obs: Observation) -> None:
        """Record what ``name`` draws now, as just observed; wake the line if that freed budget."""
        if obs.system is None or obs.chassis is None:
            return  # unreachable: keep the last known draw, the unit may still be on
        measured = obs.environment.power_watts if obs.environment else None
        now = self._clock()
        self._seen[name] = now
        if obs.environment is not None:
            limit = self._limits[name] = obs.environment.power_limit
            if limit is not None and limit.overridden:
                self._changed = now  # its reading is the sag's, not what it wants
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
        self._limits.pop(name, None)
        self._seen.pop(name, None)
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

    async def budget(self) -> Budget | None:
        """What the rack may draw now: its rating, or less while a brown-out derates the PSU."""
        try:
            rated = (await self._store.get(Rack, self.rack_name)).spec.psu_rated_watts
        except NotFound:
            return None
        budget = Budget(rated, f"a {rated:.2f} W budget")
        for name, watts in await self._brownouts():
            if watts < budget.watts:
                budget = Budget(watts, f"a {watts:.2f} W budget (brown-out {name!r})")
        return budget

    async def _brownouts(self) -> list[tuple[str, float]]:
        """The Active ``BrownOut`` Faults and their watts, listed at most every
        :data:`BROWNOUT_TTL_SECONDS` (every powered unit asks on every look)."""
        now = time.monotonic()
        if self._brownout_cache is not None and now - self._brownout_cache[0] < (
            BROWNOUT_TTL_SECONDS
        ):
            return self._brownout_cache[1]
        found = []
        for fault in await self._store.list(Fault):
            watts = fault.spec.params.get("watts")
            if (
                fault.spec.type == "BrownOut"
                and fault.status.phase == "Active"
                and isinstance(watts, int | float)
                and not isinstance(watts, bool)
            ):
                found.append((fault.metadata.name, float(watts)))
        self._brownout_cache = (now, found)
        return found

    async def govern(
        self, unit: ComputeUnit, power_off: Callable[[], Awaitable[None]]
    ) -> Verdict | None:
        """This powered unit's part of the capping plan: call ``power_off`` and return
        ``shed`` if it is shed; return ``cap`` (at ``watts``) if it must be held down,
        ``uncap`` if it holds a cap the plan no longer needs, None if nothing changes for it.
        A shed unit then waits in line and powers on through :meth:`admit` when budget
        returns."""
        name = unit.metadata.name
        budget = await self.budget()
        if budget is None:
            return None
        if not self._seeded:
            await self._seed()
        mine = self._limits.get(name)
        if self._draws.measured() <= budget.watts and not self._held():
            return None
        powered = []
        for other in await self._store.list(ComputeUnit):
            draw = self._draws.get(other.metadata.name)
            if self._member(other) and draw is not None and draw.powered:
                limit = self._limits.get(other.metadata.name)
                powered.append(
                    Candidate(
                        other.metadata.name,
                        other.spec.power_priority,
                        other.spec.slot,
                        draw.measured_watts,
                        floor=limit.floor_watts if limit else None,
                        ceiling=limit.ceiling_watts if limit else None,
                        limit=limit.limit_watts if limit else None,
                        overridden=limit.overridden if limit else False,
                    )
                )
        verdict = plan(powered, budget.watts, settled=self._settled(c.name for c in powered))
        why = (
            f"the rack asks {verdict.demand:.2f} W of {budget.why}; capped lowest power "
            f"priority first, this unit has power priority {unit.spec.power_priority}"
        )
        if name in verdict.shed:
            async with self._lock:
                await power_off()
                previous = self._draws.get(name)
                ceiling = previous.max_watts if previous is not None else None
                self._draws.set(name, Draw("Off", False, 0.0, ceiling))
            self._line[name] = None
            self._limits.pop(name, None)
            drawn = f"the rack drew {verdict.demand:.2f} W of {budget.why}"
            return Verdict(
                "shed",
                f"shed: {drawn}; power priority {unit.spec.power_priority} is among the "
                "lowest powered",
            )
        cap = verdict.caps.get(name)
        current = mine.limit_watts if mine is not None else None
        if cap is not None:
            if current is not None and abs(current - cap) < CAP_STEP_WATTS:
                return Verdict("hold", f"capped at {current:.2f} W: {why}", current)
            self._caps_changed(name, powered)
            return Verdict("cap", f"capped at {cap:.2f} W: {why}", cap, current is not None)
        if current is not None:
            if verdict.caps:  # a partial lift: the caps that stay were planned without it
                self._caps_changed(name, powered)
            if verdict.demand <= verdict.target:
                fits = (
                    f"the rack asks {verdict.demand:.2f} W, within {verdict.target:.2f} W "
                    f"of {budget.why} (its guard band kept)"
                )
            else:  # still over: units of lower priority hold the excess now
                fits = (
                    f"the rack asks {verdict.demand:.2f} W of {budget.why}, and units of "
                    "lower power priority hold the excess"
                )
            return Verdict("uncap", f"cap lifted: no longer needed: {fits}")
        return None

    def _caps_changed(self, name: str, powered: Iterable[Candidate]) -> None:
        """A cap changed: the other powered units are looked at now, and each again once its
        reading can count as settled (:meth:`settle_in`), so the next plan need not wait for
        their resync (heartbeats that say nothing new do not bring a look)."""
        self._changed = self._clock()
        if self._wake is not None:
            for other in powered:
                if other.name != name:
                    self._wake(other.name)

    def watching(self) -> bool:
        """Whether a power plan is in play on this rack (a cap or a sag's override held, or
        caps changed within :data:`PATIENCE_SECONDS`): then every reading counts, and each
        heartbeat of its units brings a look, as it did before heartbeats had to be news."""
        changed = self._changed
        recent = changed is not None and self._clock() - changed < PATIENCE_SECONDS
        return self._held() or recent

    def _held(self) -> bool:
        """Whether any unit's power limit is in force (a cap of ours, or a sag's override)."""
        return any(
            v is not None and (v.limit_watts is not None or v.overridden)
            for v in self._limits.values()
        )

    def settle_in(self, name: str) -> float | None:
        """Seconds until a look at ``name`` would read a settled draw, while the caps wait for
        one from it (None: they do not)."""
        changed = self._changed
        if changed is None:
            return None
        now = self._clock()
        due = changed + SETTLE_SECONDS
        if now - changed >= PATIENCE_SECONDS or self._seen.get(name, due - 1.0) >= due:
            return None
        return max(due - now, 0.0) + 0.05

    def _settled(self, powered: Iterable[str]) -> bool:
        """Whether the draws on record were all read after the last change of a cap (or the
        last sag), so a plan may raise or lift a cap on them (``_shedding``'s hysteresis)."""
        changed = self._changed
        if changed is None:
            return True
        now = self._clock()
        if now - changed >= PATIENCE_SECONDS:
            return True
        due = changed + SETTLE_SECONDS
        return now >= due and all(self._seen.get(name, due - 1.0) >= due for name in powered)

    def _wake_next(self) -> None:
        """Wake the unit first in line, if any."""
        if self._wake is not None and self._line:
            self._wake(next(iter(self._line)))

    async def _allows(self, name: str, chassis: ChassisView) -> tuple[bool, str]:
        budget = await self.budget()
        if budget is None:
            return True, f"no rack {self.rack_name!r} declared: no busbar budget to keep"
        rated = budget.watts
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
