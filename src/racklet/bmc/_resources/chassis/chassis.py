"""``Chassis`` and ``Chassis/<unit>``: the unit's tray, what it contains and links to, and its
locate LED (``LocationIndicatorActive``, the one writable property: PATCH, Operator)."""

from __future__ import annotations

from typing import Annotated, Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import WRITABLE, Resource, validate_patch
from racklet.bmc._http.etags import check_if_match, tagged
from racklet.bmc._http.odata import collection, link
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, read_patch, respond
from racklet.bmc._http.uris import CHASSIS
from racklet.bmc._resources.chassis.common import mine, status
from racklet.bmc._state.context import BmcContext


class Chassis(Resource):
    redfish_type = "Chassis"

    Id: str
    Name: str
    ChassisType: str = "Sled"
    PowerState: str
    Status: dict[str, str]
    MaxPowerWatts: float
    Sensors: dict[str, str]
    EnvironmentMetrics: dict[str, str]
    PowerSubsystem: dict[str, str]
    ThermalSubsystem: dict[str, str]
    Links: dict[str, Any]
    LocationIndicatorActive: Annotated[bool, WRITABLE] | None = None


def declared(ctx: BmcContext) -> Chassis:
    path = ctx.chassis_path
    led = ctx.board.locate_led
    chassis = Chassis(
        Id=ctx.unit,
        Name=f"Racklet tray {ctx.unit}",
        ChassisType="Sled",
        PowerState=ctx.power.power_state(),
        Status=status(ctx),
        MaxPowerWatts=ctx.board.max_power_watts,
        Sensors=link(f"{path}/Sensors"),
        EnvironmentMetrics=link(f"{path}/EnvironmentMetrics"),
        PowerSubsystem=link(f"{path}/PowerSubsystem"),
        ThermalSubsystem=link(f"{path}/ThermalSubsystem"),
        Links={"ComputerSystems": [link(ctx.system_path)], "ManagedBy": [link(ctx.manager_path)]},
    )
    if led is not None:
        chassis.LocationIndicatorActive = led.is_lit()
    return chassis


def body(ctx: BmcContext) -> dict[str, Any]:
    return declared(ctx).body(ctx.chassis_path)


async def chassis_collection(ctx: BmcContext, request: Request) -> Response:
    members = page(request, [ctx.chassis_path])
    return respond(collection("ChassisCollection", CHASSIS, "Chassis Collection", members))


async def get(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    return tagged(request, body(ctx))


async def patch(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    patch_body = await read_patch(request)
    # No await from here on: the If-Match check and the write are one atomic step.
    check_if_match(request, body(ctx))
    changes = validate_patch(Chassis, patch_body)
    led = ctx.board.locate_led
    if "LocationIndicatorActive" in changes:
        if led is None:  # declared, but this board has no locate LED
            raise RedfishErrorReply(400, "PropertyNotWritable", "LocationIndicatorActive")
        led.set(changes["LocationIndicatorActive"])
    return tagged(request, body(ctx))
