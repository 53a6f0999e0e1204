"""``Chassis/<unit>/PowerSubsystem``: what feeds the tray.

The unit's supply is the rack busbar, seen through the BMC board's DC/DC stage: one
``PowerSupply`` ("busbar") whose capacity is the board's ``max_power_watts``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import collection, link
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, respond
from racklet.bmc._resources.chassis.common import mine, status
from racklet.bmc._state.context import BmcContext

BUSBAR = "busbar"


class PowerSubsystem(Resource):
    redfish_type = "PowerSubsystem"

    Id: str = "PowerSubsystem"
    Name: str
    CapacityWatts: float
    Status: dict[str, str]
    PowerSupplies: dict[str, str]


class PowerSupply(Resource):
    redfish_type = "PowerSupply"

    Id: str
    Name: str
    PowerSupplyType: str = "DC"
    PowerCapacityWatts: float
    Status: dict[str, str]


def _path(ctx: BmcContext) -> str:
    return f"{ctx.chassis_path}/PowerSubsystem"


def subsystem_body(ctx: BmcContext) -> dict[str, Any]:
    return PowerSubsystem(
        Id="PowerSubsystem",
        Name=f"Power of {ctx.unit}",
        CapacityWatts=ctx.board.max_power_watts,
        Status=status(ctx),
        PowerSupplies=link(f"{_path(ctx)}/PowerSupplies"),
    ).body(_path(ctx))


async def subsystem(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    return respond(subsystem_body(ctx))


async def supplies(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    path = f"{_path(ctx)}/PowerSupplies"
    members = page(request, [f"{path}/{BUSBAR}"])
    return respond(collection("PowerSupplyCollection", path, "Power supplies", members))


async def supply(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    if request.path_params["supply_id"] != BUSBAR:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "PowerSupply", request.path_params["supply_id"]
        )
    declared = PowerSupply(
        Id=BUSBAR,
        Name="Rack busbar feed (DC/DC of the BMC board)",
        PowerSupplyType="DC",
        PowerCapacityWatts=ctx.board.max_power_watts,
        Status=status(ctx),
    )
    return respond(declared.body(f"{_path(ctx)}/PowerSupplies/{BUSBAR}"))
