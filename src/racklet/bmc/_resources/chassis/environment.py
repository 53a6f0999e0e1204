"""``Chassis/<unit>/EnvironmentMetrics``: an excerpt of every sensor, each naming its source,
and of the power cap (``PowerLimitWatts``), which a PATCH may change as it changes the
``Controls/PowerLimit`` it excerpts (the same code: :func:`controls.apply`)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import read_patch, respond
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


def _body(ctx: BmcContext) -> dict[str, Any]:
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
    return metrics.body(f"{ctx.chassis_path}/EnvironmentMetrics")


async def environment(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    return respond(_body(ctx))


async def patch(ctx: BmcContext, request: Request) -> Response:
    """Only ``PowerLimitWatts`` (its ``SetPoint`` and ``ControlMode``) is writable; readings
    are not, and a board without a power limiter has no cap to write. No If-Match: the
    body holds live readings, so its ETag would change with every sample."""
    mine(ctx, request)
    body = await read_patch(request)
    limiter, limit = controls.limit_patch(
        ctx, body, "PowerLimitWatts", EnvironmentMetrics.model_fields
    )
    if not isinstance(limit, dict):
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(limit), "PowerLimitWatts")
    if not limit:
        raise RedfishErrorReply(400, "NoOperation")
    controls.apply(ctx, limiter, limit, prefix="PowerLimitWatts/")
    return respond(_body(ctx))
