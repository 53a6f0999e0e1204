"""What every Chassis resource shares: the one chassis id this BMC answers for, its status."""

from __future__ import annotations

from starlette.requests import Request

from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._state.context import BmcContext


def mine(ctx: BmcContext, request: Request) -> None:
    """404 unless the request names this BMC's chassis (the unit's tray)."""
    if request.path_params["chassis_id"] != ctx.unit:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "Chassis", request.path_params["chassis_id"]
        )


def status(ctx: BmcContext) -> dict[str, str]:
    return {"State": "Enabled", "Health": "OK"} if ctx.present() else {"State": "Absent"}
