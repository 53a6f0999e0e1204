"""Out-of-band power changes: a unit switched on or off at its BMC, not through ``spec.power``.

A look that finds the unit's power changed since the last look, where no reset of this
controller's explains it, asks the BMC's EventLog who asked for the latest Reset (a Racklet
BMC records each one with the account or certificate identity that sent it,
:class:`racklet.redfish.ResetRequest`). A Reset newer than any seen before, by someone other
than this rack's controllers, is an out-of-band change: the unit gets an
``OutOfBandPowerChange`` event naming who did it, and then ``spec.powerPolicy`` decides:

* ``Enforce`` (the default): the reconciler goes on to revert it, as it always did;
* ``Observe``: the unit is *held* in its new state (condition ``PowerEnforced=False``,
  reason ``OutOfBandPowerChange``): the reconciler does not act on its power until its spec
  changes (a new generation), so an operator working at the BMC is not fought.

A power change without a new Reset on record (a brown-out, a fault, a pulled unit) is not an
out-of-band change: it is the rack's own doing, and the phase and its events say so.
"""

from __future__ import annotations

from racklet.api import ComputeUnit, ComputeUnitStatus, Event, remove_condition, set_condition
from racklet.controller._phase import Observation
from racklet.controller.reconcilers._unit_observe import Bmc, Hold, UnitMemory
from racklet.controller.reconcilers._unit_status import unit_event
from racklet.redfish import RedfishClientError

CONDITION = "PowerEnforced"
REASON = "OutOfBandPowerChange"
_TURNS_ON = ("On", "ForceRestart", "PowerCycle")
_TURNS_OFF = ("ForceOff", "GracefulShutdown", "PowerCycle")


class OutOfBand:
    """Notices out-of-band power changes and holds units whose policy is ``Observe``."""

    def __init__(self, identities: frozenset[str], cooldown: float) -> None:
        """``identities``: who this rack's controllers are at a BMC (their certificate's
        SPIFFE ID); a Reset by one of them is never out of band."""
        self._ours = identities
        self._cooldown = cooldown

    def _explained(self, memory: UnitMemory, powered: bool, now: float) -> bool:
        """Whether this controller's last reset, sent moments ago, explains the change."""
        last = memory.last_action
        if last is None or now - last[1] > self._cooldown:
            return False
        return last[0] in (_TURNS_ON if powered else _TURNS_OFF)

    async def notice(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        memory: UnitMemory,
        obs: Observation,
        status: ComputeUnitStatus,
        events: list[Event],
        now: float,
    ) -> None:
        """Compare this look with the last; record an out-of-band change, hold per policy."""
        name = unit.metadata.name
        powered = obs.powered
        before, memory.powered = memory.powered, powered
        hold = memory.hold
        if hold is not None and hold.generation != unit.metadata.generation:
            memory.hold = None  # the spec changed: it is what counts again
            remove_condition(status.conditions, CONDITION)
        if before is None or before == powered or self._explained(memory, powered, now):
            return
        try:
            records = await bmc.reset_requests()
        except RedfishClientError:
            return  # no record to name anyone by: not called out of band
        latest = records[-1] if records else None
        if latest is None or latest.event_id <= memory.resets_seen:
            return  # no new Reset: the rack's doing (a brown-out, a fault), not a person's
        memory.resets_seen = latest.event_id
        if latest.requested_by in self._ours:
            return
        state = "on" if powered else "off"
        done = f"powered {state} at its BMC by {latest.requested_by} ({latest.reset_type})"
        if unit.spec.power_policy == "Observe":
            memory.hold = Hold(powered, unit.metadata.generation)
            message = f"{done}; left so (powerPolicy Observe) until its spec changes"
            set_condition(
                status.conditions,
                CONDITION,
                "False",
                REASON,
                message,
                observed_generation=unit.metadata.generation,
            )
        else:
            message = f"{done}; reverting to spec.power {unit.spec.power} (powerPolicy Enforce)"
        events.append(unit_event(name, REASON, message, "Warning"))

    @staticmethod
    def held(unit: ComputeUnit, memory: UnitMemory) -> bool:
        """Whether the reconciler must leave this unit's power alone now."""
        hold = memory.hold
        return hold is not None and hold.generation == unit.metadata.generation
