"""``Chassis/<unit>/Controls/PowerLimit``: the unit's power cap, a Redfish ``Control`` of
``ControlType: Power``.

A Raspberry Pi has no RAPL, but its firmware sets its clocks, and a cap is a clock ceiling:
the board's :class:`racklet.hw.PowerLimiter` holds the unit's draw at or under ``SetPoint``
down to its floor (four busy cores at the lowest clock). ``AllowableMin``/``AllowableMax``
say that range. PATCH (``ConfigureComponents``: Operator, the controller):
``{"SetPoint": 4.5}`` caps at 4.5 W (``ControlMode`` becomes ``Automatic``);
``{"ControlMode": "Disabled"}`` lifts it; ``{"ControlMode": "Automatic"}`` caps at the last
set-point. A set-point outside the range is ``PropertyValueOutOfRange`` and changes nothing.
``ControlMode`` is ``Override`` while the busbar sags and the firmware holds the unit at its
floor whatever the cap (under-voltage: "temporarily overridden", in the schema's words): a
controller planning caps must know that the meter no longer shows the demand.
``EnvironmentMetrics.PowerLimitWatts`` excerpts the control, so the controller's usual look
sees the cap without another read, and a PATCH of the excerpt
(``{"PowerLimitWatts": {"SetPoint": 4.5}}``, as the OCP baseline profile writes it) goes
through the same :func:`apply`.

Modern Redfish (``Controls``, Chassis v1_17+); the deprecated ``Power`` resource's
``PowerControl[0].PowerLimit.LimitInWatts``, which OCP's profiles and older tools read and
write, shows and changes the same cap (``null``: no cap). A board without a limiter serves an
empty ``Controls`` collection and no ``PowerLimit``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.etags import check_if_match, tagged
from racklet.bmc._http.odata import collection, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, read_patch, respond
from racklet.bmc._resources.chassis.common import mine, status
from racklet.bmc._state.context import BmcContext
from racklet.hw import PowerLimiter

CONTROL_ID = "PowerLimit"
MODES = ("Automatic", "Disabled")


def control_path(ctx: BmcContext) -> str:
    return f"{ctx.chassis_path}/Controls/{CONTROL_ID}"


def _reading(ctx: BmcContext) -> float | None:
    meter = ctx.meter
    if not meter.monitor_ok or meter.reading is None:
        return None
    return round(meter.reading.watts, 4)


def _bounds(limiter: PowerLimiter) -> tuple[float, float]:
    """``AllowableMin``/``Max`` in mW steps, rounded inwards: a client that sets what they say
    gets it (a floor rounded down would be refused by the firmware)."""
    return (
        math.ceil(limiter.floor_watts() * 1000) / 1000,
        math.floor(limiter.ceiling_watts() * 1000) / 1000,
    )


def _mode(limiter: PowerLimiter, limit: float | None) -> str:
    if limiter.under_voltage():
        return "Override"
    return "Disabled" if limit is None else "Automatic"


def _set_point(ctx: BmcContext, limiter: PowerLimiter) -> float:
    if ctx.power_limit_set_point is None:
        ctx.power_limit_set_point = limiter.limit_watts() or limiter.ceiling_watts()
    return ctx.power_limit_set_point


def excerpt(ctx: BmcContext) -> dict[str, Any]:
    """``PowerLimitWatts`` for ``EnvironmentMetrics`` ({} without a limiter)."""
    limiter = ctx.board.power_limiter
    if limiter is None:
        return {}
    limit = limiter.limit_watts()
    low, high = _bounds(limiter)
    return {
        "PowerLimitWatts": {
            "DataSourceUri": control_path(ctx),
            "ControlMode": _mode(limiter, limit),
            "SetPoint": limit,
            "AllowableMin": low,
            "AllowableMax": high,
            "Reading": _reading(ctx),
            "ReadingUnits": "W",
        },
    }


def _limiter(ctx: BmcContext, request: Request) -> PowerLimiter:
    mine(ctx, request)
    limiter = ctx.board.power_limiter
    if request.path_params["control_id"] != CONTROL_ID or limiter is None:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "Control", request.path_params["control_id"]
        )
    return limiter


def _body(ctx: BmcContext, limiter: PowerLimiter) -> dict[str, Any]:
    limit = limiter.limit_watts()
    low, high = _bounds(limiter)
    return resource(
        "Control",
        control_path(ctx),
        Id=CONTROL_ID,
        Name=f"Power limit of {ctx.unit}",
        ControlType="Power",
        ControlMode=_mode(limiter, limit),
        SetPoint=limit if limit is not None else _set_point(ctx, limiter),
        SetPointUnits="W",
        AllowableMin=low,
        AllowableMax=high,
        PhysicalContext="SystemBoard",
        Sensor={"DataSourceUri": f"{ctx.chassis_path}/Sensors/power", "Reading": _reading(ctx)},
        Status=status(ctx),
    )


async def controls(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    path = f"{ctx.chassis_path}/Controls"
    members = page(request, [control_path(ctx)] if ctx.board.power_limiter is not None else [])
    return respond(collection("ControlCollection", path, "Controls", members))


async def control(ctx: BmcContext, request: Request) -> Response:
    return tagged(request, _body(ctx, _limiter(ctx, request)))


def limit_patch(
    ctx: BmcContext, body: dict[str, Any], writable: str, known: Iterable[str]
) -> tuple[PowerLimiter, Any]:
    """The board's limiter and the one property ``writable`` of a PATCH ``body`` that writes a
    power limit through another resource (EnvironmentMetrics, the old Power): any other
    property is unknown or read-only, and a board without a limiter has none to write."""
    value = body.pop(writable, None)
    names = set(known)
    for name in body:
        raise RedfishErrorReply(
            400, "PropertyNotWritable" if name in names else "PropertyUnknown", name
        )
    limiter = ctx.board.power_limiter
    if limiter is None:
        raise RedfishErrorReply(400, "PropertyNotWritable", writable)
    return limiter, value


def apply(
    ctx: BmcContext,
    limiter: PowerLimiter,
    patch: dict[str, Any],
    prefix: str = "",
    set_point_name: str = "SetPoint",
) -> None:
    """Validate and carry out a change of the cap (``ControlMode``, ``SetPoint``): the one
    path for the control, ``EnvironmentMetrics.PowerLimitWatts`` and the old ``Power``
    resource's ``PowerLimit`` (``prefix`` is the JSON pointer of the excerpt, and errors name
    the set-point as that resource does). Nothing changes unless the whole change is valid."""
    mode = patch.pop("ControlMode", None)
    set_point = patch.pop("SetPoint", None)
    shown = {*_body(ctx, limiter), *excerpt(ctx)["PowerLimitWatts"]}
    for name in patch:
        key = "PropertyNotWritable" if name in shown else "PropertyUnknown"
        raise RedfishErrorReply(400, key, f"{prefix}{name}")
    if mode is not None and mode not in MODES:
        raise RedfishErrorReply(
            400, "PropertyValueNotInList", json.dumps(mode), f"{prefix}ControlMode"
        )
    if set_point is not None:
        if isinstance(set_point, bool) or not isinstance(set_point, int | float):
            raise RedfishErrorReply(
                400, "PropertyValueTypeError", json.dumps(set_point), f"{prefix}{set_point_name}"
            )
        low, high = _bounds(limiter)
        if not low <= set_point <= high:
            raise RedfishErrorReply(
                400, "PropertyValueOutOfRange", json.dumps(set_point), f"{prefix}{set_point_name}"
            )
        ctx.power_limit_set_point = float(set_point)
    if mode == "Disabled":
        limiter.set_limit_watts(None)
        what = "lifted"
    else:  # a set-point, or Automatic: cap at the set-point
        cap = _set_point(ctx, limiter)
        limiter.set_limit_watts(cap)
        what = f"{cap:.2f} W"
    ctx.log.info(f"power limit {what}")


async def patch_control(ctx: BmcContext, request: Request) -> Response:
    limiter = _limiter(ctx, request)
    patch = await read_patch(request)
    check_if_match(request, _body(ctx, limiter))
    apply(ctx, limiter, patch)
    return tagged(request, _body(ctx, limiter))
