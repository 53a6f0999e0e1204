"""``Chassis/<unit>/Power`` and ``Thermal``: the deprecated (but still widely read) schemas,
served beside PowerSubsystem and ThermalSubsystem from the same sample, for clients and
profiles (OCP Baseline v1.0) that predate them. One property is writable:
``PowerControl[0].PowerLimit.LimitInWatts``, the unit's cap, changed through the same
:func:`controls.apply` as ``Controls/PowerLimit`` (``null`` lifts it). Fan control lives in
the newer resources."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import read_patch, respond
from racklet.bmc._resources.chassis import controls
from racklet.bmc._resources.chassis.common import mine, status
from racklet.bmc._resources.chassis.sensors import SENSORS, reading
from racklet.bmc._resources.chassis.thermal import fans_of
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.fans import stalled_now
from racklet.bmc._state.power import WINDOW_MINUTES

_BY_ID = {kind.id: kind for kind in SENSORS}


class Power(Resource):
    redfish_type = "Power"

    Id: str = "Power"
    Name: str
    PowerControl: list[dict[str, Any]]
    Voltages: list[dict[str, Any]]
    PowerSupplies: list[dict[str, Any]]
    Redundancy: list[dict[str, Any]]


class Thermal(Resource):
    redfish_type = "Thermal"

    Id: str = "Thermal"
    Name: str
    Status: dict[str, str]
    Temperatures: list[dict[str, Any]]
    Fans: list[dict[str, Any]]


def _limit(ctx: BmcContext) -> dict[str, Any]:
    """``PowerLimit`` of the unit's ``PowerControl`` ({} on a board without a limiter)."""
    excerpt = controls.excerpt(ctx).get("PowerLimitWatts")
    if excerpt is None:
        return {}
    capped = excerpt["ControlMode"] != "Disabled"
    return {
        "PowerLimit": {
            "LimitInWatts": excerpt["SetPoint"] if capped else None,
            "LimitException": "NoAction",  # the firmware holds the cap; nothing else acts
        }
    }


async def power(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    return respond(_power(ctx))


async def patch_power(ctx: BmcContext, request: Request) -> Response:
    """``{"PowerControl": [{"PowerLimit": {"LimitInWatts": 4.5}}]}`` caps the unit; ``null``
    lifts the cap; anything else is read-only."""
    mine(ctx, request)
    body = await read_patch(request)
    limiter, control_list = controls.limit_patch(ctx, body, "PowerControl", Power.model_fields)
    if (
        not isinstance(control_list, list)
        or len(control_list) != 1
        or not isinstance(control_list[0], dict)
    ):
        raise RedfishErrorReply(
            400, "PropertyValueTypeError", json.dumps(control_list), "PowerControl"
        )
    item = dict(control_list[0])
    item.pop("@odata.id", None)
    limit = item.pop("PowerLimit", None)
    for name in item:
        raise RedfishErrorReply(400, "PropertyNotWritable", f"PowerControl/0/{name}")
    pointer = "PowerControl/0/PowerLimit"
    if not isinstance(limit, dict):
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(limit), pointer)
    for name in limit:
        if name != "LimitInWatts":
            raise RedfishErrorReply(400, "PropertyNotWritable", f"{pointer}/{name}")
    if not limit:
        raise RedfishErrorReply(400, "NoOperation")
    watts = limit["LimitInWatts"]
    change = {"ControlMode": "Disabled"} if watts is None else {"SetPoint": watts}
    controls.apply(ctx, limiter, change, prefix=f"{pointer}/", set_point_name="LimitInWatts")
    return respond(_power(ctx))


def _metrics(ctx: BmcContext) -> dict[str, Any]:
    """``PowerMetrics``: the monitor's samples of the last minute ({} before the first)."""
    stats = ctx.meter.stats()
    if stats is None:
        return {}
    return {
        "PowerMetrics": {
            "IntervalInMin": WINDOW_MINUTES,
            "MinConsumedWatts": round(stats.min_watts, 3),
            "MaxConsumedWatts": round(stats.max_watts, 3),
            "AverageConsumedWatts": round(stats.average_watts, 3),
        }
    }


def _sensor_number(ctx: BmcContext) -> dict[str, int]:
    """``SensorNumber`` of the unit's voltage: the power monitor's SMBus address, which is
    what names that sensor on the board (the schema asks for a number unique within the
    resource; its one voltage comes from that chip). {} for a monitor not on a bus."""
    address = getattr(ctx.board.power_monitor, "address", None)
    return {"SensorNumber": address} if isinstance(address, int) else {}


def _power(ctx: BmcContext) -> dict[str, Any]:
    path = f"{ctx.chassis_path}/Power"
    watts = reading(ctx, _BY_ID["power"])
    declared = Power(
        Id="Power",
        Name=f"Power of {ctx.unit}",
        PowerControl=[
            {
                "@odata.id": f"{path}#/PowerControl/0",
                "MemberId": "0",
                "Name": "Unit input power",
                "PhysicalContext": "SystemBoard",
                "PowerConsumedWatts": watts,
                "PowerCapacityWatts": ctx.board.max_power_watts,
                **_metrics(ctx),
                **_limit(ctx),
                "Status": status(ctx),
            }
        ],
        Voltages=[
            {
                "@odata.id": f"{path}#/Voltages/0",
                "MemberId": "0",
                "Name": "Unit input voltage",
                **_sensor_number(ctx),
                "ReadingVolts": reading(ctx, _BY_ID["voltage"]),
                "PhysicalContext": "SystemBoard",
                "Status": status(ctx),
            }
        ],
        PowerSupplies=[
            {
                "@odata.id": f"{path}#/PowerSupplies/0",
                "MemberId": "0",
                "Name": "Rack busbar feed (DC/DC of the BMC board)",
                "PowerSupplyType": "DC",
                "PowerCapacityWatts": ctx.board.max_power_watts,
                "Status": status(ctx),
            }
        ],
        Redundancy=[],  # one feed: no redundancy group
    )
    return declared.body(path)


async def thermal(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    path = f"{ctx.chassis_path}/Thermal"
    fans = []
    for index, fan in enumerate(sorted(fans_of(ctx).values(), key=lambda f: f.name)):
        fans.append(
            {
                "@odata.id": f"{path}#/Fans/{index}",
                "MemberId": str(index),
                "Name": f"Fan {fan.name}",
                "Reading": round(fan.rpm()),
                "ReadingUnits": "RPM",
                "PhysicalContext": "Fan",
                "HotPluggable": False,
                "Status": {
                    "State": "Enabled",
                    "Health": "Critical" if stalled_now(fan) else "OK",
                },
            }
        )
    declared = Thermal(
        Id="Thermal",
        Name=f"Cooling of {ctx.unit}",
        Status=status(ctx),
        Temperatures=[
            {
                "@odata.id": f"{path}#/Temperatures/0",
                "MemberId": "0",
                "Name": "CPU1 Temp",  # the SoC's, under the name IPMI-era tools look for
                "ReadingCelsius": reading(ctx, _BY_ID["temperature"]),
                "UpperThresholdNonCritical": ctx.meter.temperature_caution,
                "PhysicalContext": "CPU",
                "Status": status(ctx),
            }
        ],
        Fans=fans,
    )
    return respond(declared.body(path))
