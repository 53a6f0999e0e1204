"""``Chassis`` and ``Chassis/<unit>``: the unit's tray, what it is (the board's identity:
manufacturer, model, serial number), what it contains and links to. Two properties are
writable (PATCH, Operator): the locate LED (``LocationIndicatorActive``) and ``AssetTag``,
which the BMC keeps in its own storage. ``Chassis.Reset`` acts on the tray's power, which is
the unit's: the same mechanism as the System's Reset (``_state.resets``)."""

from __future__ import annotations

from typing import Annotated, Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import (
    WRITABLE,
    Declared,
    Resource,
    Writable,
    action_parameters,
    allowable,
    validate_action,
    validate_patch,
)
from racklet.bmc._http.etags import check_if_match, tagged
from racklet.bmc._http.idempotency import HEADER as IDEMPOTENCY_HEADER
from racklet.bmc._http.odata import collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import (
    no_content,
    page,
    principal,
    read_object,
    read_patch,
    respond,
)
from racklet.bmc._http.uris import CHASSIS
from racklet.bmc._resources.chassis.common import mine, status
from racklet.bmc._state.asset_tag import MAX_LENGTH
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.power import ResetType
from racklet.bmc._state.resets import request_reset
from racklet.bmc.errors import StateError

RESET_ACTION = "Chassis.Reset"


class ChassisResetParameters(Declared):
    ResetType: ResetType


class Chassis(Resource):
    redfish_type = "Chassis"

    Id: str
    Name: str
    ChassisType: str = "Sled"
    Manufacturer: str | None = None
    Model: str | None = None
    PartNumber: str | None = None
    SerialNumber: str | None = None
    AssetTag: Annotated[str, Writable(maximum=MAX_LENGTH)]
    PowerState: str
    Status: dict[str, str]
    MaxPowerWatts: float
    Sensors: dict[str, str]
    EnvironmentMetrics: dict[str, str]
    PowerSubsystem: dict[str, str]
    ThermalSubsystem: dict[str, str]
    Controls: dict[str, str]
    Power: dict[str, str]
    Thermal: dict[str, str]
    Links: dict[str, Any]
    LocationIndicatorActive: Annotated[bool, WRITABLE] | None = None
    Actions: dict[str, Any]


def declared(ctx: BmcContext) -> Chassis:
    path = ctx.chassis_path
    led = ctx.board.locate_led
    chassis = Chassis(
        Id=ctx.unit,
        Name=f"Racklet tray {ctx.unit}",
        ChassisType="Sled",
        AssetTag=ctx.asset_tag.cached(),
        PowerState=ctx.power.power_state(),
        Status=status(ctx),
        MaxPowerWatts=ctx.board.max_power_watts,
        Sensors=link(f"{path}/Sensors"),
        EnvironmentMetrics=link(f"{path}/EnvironmentMetrics"),
        PowerSubsystem=link(f"{path}/PowerSubsystem"),
        ThermalSubsystem=link(f"{path}/ThermalSubsystem"),
        Controls=link(f"{path}/Controls"),
        Power=link(f"{path}/Power"),
        Thermal=link(f"{path}/Thermal"),
        Links={
            "ComputerSystems": [link(ctx.system_path)],
            "ManagedBy": [link(ctx.manager_path)],
            "ManagersInChassis": [link(ctx.manager_path)],  # the BMC board sits in the tray
            "Contains": [],  # a tray holds no other chassis
        },
        Actions={
            f"#{RESET_ACTION}": {
                "target": f"{path}/Actions/{RESET_ACTION}",
                "@Redfish.ActionInfo": f"{path}/ResetActionInfo",
                "ResetType@Redfish.AllowableValues": allowable(ChassisResetParameters, "ResetType"),
            }
        },
    )
    if led is not None:
        chassis.LocationIndicatorActive = led.is_lit()
    identity = ctx.board.identity
    if identity is not None:
        chassis.Manufacturer = identity.manufacturer
        chassis.Model = identity.model
        if identity.part_number is not None:
            chassis.PartNumber = identity.part_number
        chassis.SerialNumber = identity.serial_number
    return chassis


def body(ctx: BmcContext) -> dict[str, Any]:
    return declared(ctx).body(ctx.chassis_path)


async def chassis_collection(ctx: BmcContext, request: Request) -> Response:
    members = page(request, [ctx.chassis_path])
    return respond(collection("ChassisCollection", CHASSIS, "Chassis Collection", members))


async def get(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    await _asset_tag(ctx)
    return tagged(request, body(ctx))


async def _asset_tag(ctx: BmcContext) -> str:
    try:
        return await ctx.asset_tag.get()
    except StateError as exc:
        raise RedfishErrorReply(500, "InternalError") from exc


async def patch(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    patch_body = await read_patch(request)
    await _asset_tag(ctx)
    # No await from here on: the If-Match check and the write are one atomic step.
    check_if_match(request, body(ctx))
    changes = validate_patch(Chassis, patch_body)
    led = ctx.board.locate_led
    if "LocationIndicatorActive" in changes:
        if led is None:  # declared, but this board has no locate LED
            raise RedfishErrorReply(400, "PropertyNotWritable", "LocationIndicatorActive")
        led.set(changes["LocationIndicatorActive"])
    if "AssetTag" in changes:
        try:
            await ctx.asset_tag.set(changes["AssetTag"])
        except StateError as exc:
            raise RedfishErrorReply(500, "InternalError") from exc
    return tagged(request, body(ctx))


async def action_info(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    return respond(
        resource(
            "ActionInfo",
            f"{ctx.chassis_path}/ResetActionInfo",
            Id="ResetActionInfo",
            Name="Reset Action Info",
            Parameters=action_parameters(ChassisResetParameters),
        )
    )


async def reset(ctx: BmcContext, request: Request) -> Response:
    """The tray's power: the unit's, reset as the System's Reset does."""
    mine(ctx, request)
    params: ChassisResetParameters = validate_action(
        ChassisResetParameters, await read_object(request), RESET_ACTION
    )
    key = request.headers.get(IDEMPOTENCY_HEADER)
    who = principal(request).username
    await request_reset(ctx, params.ResetType, who, ctx.chassis_path, key)
    return no_content()
