"""``Chassis/<unit>/ThermalSubsystem``: what cools the tray.

The ``Fans`` collection lists the board's fans (the HAL's :class:`racklet.hw.Fan`; a fanless
board has none, and the rack's own fans belong to the RMC). A fan's ``SpeedPercent.Reading``
is its tachometer over its rated speed, as the Fan schema asks; a fan driven but not turning
is ``Health: Critical``.
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
from racklet.bmc._state.fans import stalled_now
from racklet.hw import Fan


class ThermalSubsystem(Resource):
    redfish_type = "ThermalSubsystem"

    Id: str = "ThermalSubsystem"
    Name: str
    Status: dict[str, str]
    Fans: dict[str, str]


class FanResource(Resource):
    redfish_type = "Fan"

    Id: str
    Name: str
    PhysicalContext: str = "Fan"
    SpeedPercent: dict[str, Any]
    RatedSpeedRPM: int
    Status: dict[str, str]


def _path(ctx: BmcContext) -> str:
    return f"{ctx.chassis_path}/ThermalSubsystem"


def fans_of(ctx: BmcContext) -> dict[str, Fan]:
    return {fan.name: fan for fan in ctx.board.fans}


def fan_declared(fan: Fan) -> FanResource:
    rpm = fan.rpm()
    return FanResource(
        Id=fan.name,
        Name=f"Fan {fan.name}",
        PhysicalContext="Fan",
        SpeedPercent={"Reading": round(100.0 * rpm / fan.rated_rpm, 1), "SpeedRPM": rpm},
        RatedSpeedRPM=round(fan.rated_rpm),
        Status={"State": "Enabled", "Health": "Critical" if stalled_now(fan) else "OK"},
    )


async def subsystem(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    declared = ThermalSubsystem(
        Id="ThermalSubsystem",
        Name=f"Cooling of {ctx.unit}",
        Status=status(ctx),
        Fans=link(f"{_path(ctx)}/Fans"),
    )
    return respond(declared.body(_path(ctx)))


async def fans(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    path = f"{_path(ctx)}/Fans"
    members = [f"{path}/{name}" for name in page(request, sorted(fans_of(ctx)))]
    return respond(collection("FanCollection", path, "Fans", members))


async def fan(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    found = fans_of(ctx).get(request.path_params["fan_id"])
    if found is None:
        raise RedfishErrorReply(404, "ResourceNotFound", "Fan", request.path_params["fan_id"])
    return respond(fan_declared(found).body(f"{_path(ctx)}/Fans/{found.name}"))
