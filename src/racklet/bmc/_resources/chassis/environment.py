"""``Chassis/<unit>/EnvironmentMetrics``: an excerpt of every sensor, each naming its source."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.responses import respond
from racklet.bmc._resources.chassis import controls
from racklet.bmc._resources.chassis.common import mine
from racklet.bmc._resources.chassis.sensors import SENSORS, reading, sensors_path
from racklet.bmc._state.context import BmcContext


class EnvironmentMetrics(Resource):
    redfish_type = "EnvironmentMetrics"

    Id: str = "EnvironmentMetrics"
    Name: str
    PowerWatts: dict[str, Any]
    Voltage: dict[str, Any]
    CurrentAmps: dict[str, Any]
    EnergyJoules: dict[str, Any]
    TemperatureCelsius: dict[str, Any]
    PowerLimitWatts: dict[str, Any] | None = None


async def environment(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    excerpts: dict[str, Any] = {
        kind.metric: {
            "DataSourceUri": f"{sensors_path(ctx)}/{kind.id}",
            "Reading": reading(ctx, kind),
        }
        for kind in SENSORS
    }
    metrics = EnvironmentMetrics(
        Id="EnvironmentMetrics",
        Name=f"Environment metrics of {ctx.unit}",
        **excerpts,
        **controls.excerpt(ctx),
    )
    return respond(metrics.body(f"{ctx.chassis_path}/EnvironmentMetrics"))
