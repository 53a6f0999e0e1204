"""A reset of the unit's power, asked through its System or its tray's Chassis.

The tray's power is the unit's (the BMC board's DC/DC switch feeds both), so both Redfish
actions (``ComputerSystem.Reset`` and ``Chassis.Reset``) are one mechanism: the EventLog
record of who asked, one ``Idempotency-Key`` memory (a repeat through either is done once),
the same power sequence.
"""

from __future__ import annotations

from racklet.bmc._http.registry import message_id
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.power import ResetType

RESET_REQUESTED = message_id("Racklet.ResetRequested")
"""The EventLog record of a Reset: args (unit, ResetType, who: account or SPIFFE ID)."""


async def request_reset(
    ctx: BmcContext, reset_type: ResetType, who: str, origin: str, key: str | None
) -> None:
    """Carry out ``reset_type`` of the unit's power once per ``key``; ``origin`` is the
    resource the action was posted to (the System or the Chassis)."""

    async def carry_out() -> None:
        # Who asked, in the EventLog: a controller tells its own resets from a user's.
        ctx.events.publish(
            RESET_REQUESTED,
            f"ResetType {reset_type} of '{ctx.unit}' requested by {who}.",
            (ctx.unit, reset_type, who),
            "OK",
            origin,
        )
        await ctx.power.reset(reset_type)

    await ctx.resets.run(key, reset_type, carry_out)
