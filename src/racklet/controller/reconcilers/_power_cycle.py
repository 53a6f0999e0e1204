"""The exactly-once power cycle: one reset per ``racklet.dev/power-cycle-request`` value.

The request is recorded in ``status.lastPowerCycle`` and ``status.pendingPowerCycle``
*before* the reset is sent, in a write that fails unless this controller still leads (the
fenced store of an HA controller); the reset carries ``Idempotency-Key: <uid>/<request>``;
the status write after it clears the pending mark. A controller that takes over and finds a
cycle still pending sends it again with the same key, and the BMC carries a key out once:
so a cycle is done exactly once across a failover. A failed reset is an event; a request for
a unit that is off is skipped with an event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from racklet.api import (
    POWER_CYCLE_ANNOTATION,
    ComputeUnit,
    ComputeUnitStatus,
    Event,
    copy_model,
)
from racklet.controller._phase import Observation
from racklet.controller.reconcilers._unit_observe import Bmc, UnitMemory
from racklet.controller.reconcilers._unit_status import unit_event
from racklet.redfish import RedfishClientError
from racklet.store import Store

Reset = Callable[[str, Bmc, UnitMemory, str, str | None], Awaitable[None]]
"""Send one reset (fenced): name, BMC, the unit's memory, reset type, idempotency key."""


class PowerCycles:
    def __init__(self, store: Store, reset: Reset) -> None:
        self._store = store
        self._reset = reset

    @staticmethod
    def requested(unit: ComputeUnit, status: ComputeUnitStatus) -> str | None:
        """The request this protocol still has to handle, if any."""
        request = unit.metadata.annotations.get(POWER_CYCLE_ANNOTATION)
        if not request:
            return None
        if request != status.last_power_cycle or request == status.pending_power_cycle:
            return request
        return None

    async def handle(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        memory: UnitMemory,
        obs: Observation,
        request: str,
        status: ComputeUnitStatus,
        events: list[Event],
    ) -> str | None:
        """Carry out ``request`` (from :meth:`requested`); return ``"PowerCycle"`` if a
        reset went out or the request was just handled (so the unit is followed), else None."""
        if request == status.pending_power_cycle and request == status.last_power_cycle:
            return await self._resend(unit, bmc, memory, request, status, events)
        name = unit.metadata.name
        if memory.cycled != request:
            if unit.spec.power == "On" and obs.powered:
                await self._record_intent(unit, request)
                memory.cycled = request
                await self._send(unit, bmc, memory, request, events, "requested")
            else:
                events.append(
                    unit_event(name, "PowerCycleSkipped", f"power cycle {request}: unit is off")
                )
            memory.cycled = request
        status.last_power_cycle = request
        return "PowerCycle"

    async def _record_intent(self, unit: ComputeUnit, request: str) -> None:
        """Mark ``request`` as handled, and as pending until the BMC answers, before acting on
        it (fenced): the status write after the reset clears the pending mark."""
        intent = copy_model(unit)
        intent.status.last_power_cycle = request
        intent.status.pending_power_cycle = request
        recorded = await self._store.update_status(intent)
        unit.metadata.resource_version = recorded.metadata.resource_version
        unit.status.last_power_cycle = request
        unit.status.pending_power_cycle = request

    async def _resend(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        memory: UnitMemory,
        request: str,
        status: ComputeUnitStatus,
        events: list[Event],
    ) -> str | None:
        """A power cycle recorded but never known to have reached the BMC: a leader died (or
        its status write was lost) between the two. Send it again with the same key; a BMC
        that already got it answers without cycling the unit twice."""
        name = unit.metadata.name
        status.pending_power_cycle = None
        if memory.cycled == request:
            return None  # this controller sent it; only the write that said so was lost
        memory.cycled = request
        if unit.spec.power != "On":
            events.append(
                unit_event(name, "PowerCycleSkipped", f"power cycle {request}: spec is Off")
            )
            return None
        await self._send(
            unit, bmc, memory, request, events, "sent again after a failover (done once by the BMC)"
        )
        return "PowerCycle"

    async def _send(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        memory: UnitMemory,
        request: str,
        events: list[Event],
        done: str,
    ) -> None:
        """Send the reset of a recorded request, keyed by it; a failure is an event."""
        name = unit.metadata.name
        try:
            await self._reset(name, bmc, memory, "PowerCycle", cycle_key(unit, request))
        except RedfishClientError as exc:
            message = f"power cycle {request} failed: {exc}"
            events.append(unit_event(name, "PowerCycleFailed", message, "Warning"))
        else:
            events.append(unit_event(name, "PowerCycle", f"power cycle {request} {done}"))


def cycle_key(unit: ComputeUnit, request: str) -> str:
    """The ``Idempotency-Key`` of one power-cycle request: every controller derives the same."""
    return f"{unit.metadata.uid}/{request}"
