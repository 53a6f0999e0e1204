"""``Chassis/{id}/PowerSubsystem`` and ``ThermalSubsystem``: what feeds the tray and what
cools it.

The unit's supply is the rack busbar, seen through the BMC board's DC/DC stage: one
``PowerSupply`` ("busbar") whose capacity is the board's ``max_power_watts`` and whose
output is the unit's measured draw. The ``Fans`` collection lists the board's fans (the HAL's
:class:`racklet.hw.Fan`; a fanless board has none, and the rack's own fans belong to the RMC).
A fan's ``SpeedPercent.Reading`` is its tachometer over its rated speed, as the Fan schema
asks; a fan driven but not turning is ``Health: Critical``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._http.odata import collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, respond, route
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.fans import stalled_now
from racklet.hw import Fan

BUSBAR = "busbar"


def _fans(ctx: BmcContext) -> dict[str, Fan]:
    return {fan.name: fan for fan in ctx.board.fans}


def routes(ctx: BmcContext) -> list[Route]:
    power_path = f"{ctx.chassis_path}/PowerSubsystem"
    supplies_path = f"{power_path}/PowerSupplies"
    thermal_path = f"{ctx.chassis_path}/ThermalSubsystem"
    fans_path = f"{thermal_path}/Fans"

    def _mine(request: Request) -> None:
        if request.path_params["chassis_id"] != ctx.unit:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Chassis", request.path_params["chassis_id"]
            )

    def _status() -> dict[str, str]:
        return {"State": "Enabled", "Health": "OK"} if ctx.present() else {"State": "Absent"}

    async def power(request: Request) -> Response:
        _mine(request)
        return respond(
            resource(
                "PowerSubsystem",
                power_path,
                Id="PowerSubsystem",
                Name=f"Power of {ctx.unit}",
                CapacityWatts=ctx.board.max_power_watts,
                Status=_status(),
                PowerSupplies=link(supplies_path),
            )
        )

    async def supplies(request: Request) -> Response:
        _mine(request)
        members = page(request, [f"{supplies_path}/{BUSBAR}"])
        return respond(
            collection("PowerSupplyCollection", supplies_path, "Power supplies", members)
        )

    async def supply(request: Request) -> Response:
        _mine(request)
        if request.path_params["supply_id"] != BUSBAR:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "PowerSupply", request.path_params["supply_id"]
            )
        return respond(
            resource(
                "PowerSupply",
                f"{supplies_path}/{BUSBAR}",
                Id=BUSBAR,
                Name="Rack busbar feed (DC/DC of the BMC board)",
                PowerSupplyType="DC",
                PowerCapacityWatts=ctx.board.max_power_watts,
                Status=_status(),
            )
        )

    async def thermal(request: Request) -> Response:
        _mine(request)
        return respond(
            resource(
                "ThermalSubsystem",
                thermal_path,
                Id="ThermalSubsystem",
                Name=f"Cooling of {ctx.unit}",
                Status=_status(),
                Fans=link(fans_path),
            )
        )

    async def fans(request: Request) -> Response:
        _mine(request)
        members = [f"{fans_path}/{name}" for name in page(request, sorted(_fans(ctx)))]
        return respond(collection("FanCollection", fans_path, "Fans", members))

    def fan_body(fan: Fan) -> dict[str, Any]:
        rpm = fan.rpm()
        status = {"State": "Enabled", "Health": "Critical" if stalled_now(fan) else "OK"}
        return resource(
            "Fan",
            f"{fans_path}/{fan.name}",
            Id=fan.name,
            Name=f"Fan {fan.name}",
            PhysicalContext="Fan",
            SpeedPercent={"Reading": round(100.0 * rpm / fan.rated_rpm, 1), "SpeedRPM": rpm},
            RatedSpeedRPM=round(fan.rated_rpm),
            Status=status,
        )

    async def fan(request: Request) -> Response:
        _mine(request)
        found = _fans(ctx).get(request.path_params["fan_id"])
        if found is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "Fan", request.path_params["fan_id"])
        return respond(fan_body(found))

    item = "/redfish/v1/Chassis/{chassis_id}"
    return [
        route(f"{item}/PowerSubsystem", GET=power),
        route(f"{item}/PowerSubsystem/PowerSupplies", GET=supplies),
        route(f"{item}/PowerSubsystem/PowerSupplies/{{supply_id}}", GET=supply),
        route(f"{item}/ThermalSubsystem", GET=thermal),
        route(f"{item}/ThermalSubsystem/Fans", GET=fans),
        route(f"{item}/ThermalSubsystem/Fans/{{fan_id}}", GET=fan),
    ]
