"""``Chassis/{id}/Controls/PowerLimit``: the unit's power cap, a Redfish ``Control`` of
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
sees the cap without another read.

Modern Redfish (``Controls``, Chassis v1_17+) rather than the deprecated ``Power`` resource's
``PowerControl[].PowerLimit``; the deprecated one is not served. A board without a limiter
serves an empty ``Controls`` collection.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._context import BmcContext
from racklet.bmc._http import check_if_match, page, read_patch, respond, route, tagged
from racklet.bmc._message_registry import RedfishErrorReply
from racklet.bmc._schema import ROOT, collection, resource
from racklet.hw import PowerLimiter

CONTROL_ID = "PowerLimit"
MODES = ("Automatic", "Disabled")


def control_path(ctx: BmcContext) -> str:
    return f"{ctx.chassis_path}/Controls/{CONTROL_ID}"


class _State:
    """The last set-point asked for (``ControlMode: Automatic`` alone re-applies it)."""

    def __init__(self, limiter: PowerLimiter) -> None:
        self.set_point = limiter.limit_watts() or limiter.ceiling_watts()


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


def excerpt(ctx: BmcContext) -> dict[str, Any]:
    """``PowerLimitWatts`` and the Oem flag for ``EnvironmentMetrics`` ({} without a limiter)."""
    limiter = ctx.board.power_limiter
    if limiter is None:
        return {}
    limit = limiter.limit_watts()
    return {
        "PowerLimitWatts": {
            "DataSourceUri": control_path(ctx),
            "ControlMode": _mode(limiter, limit),
            "SetPoint": limit,
            "AllowableMin": _bounds(limiter)[0],
            "AllowableMax": _bounds(limiter)[1],
            "Reading": _reading(ctx),
            "ReadingUnits": "W",
        },
    }


def routes(ctx: BmcContext) -> list[Route]:
    controls_path = f"{ctx.chassis_path}/Controls"
    path = control_path(ctx)
    limiter = ctx.board.power_limiter
    state = _State(limiter) if limiter is not None else None

    def _mine(request: Request) -> None:
        if request.path_params["chassis_id"] != ctx.unit:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Chassis", request.path_params["chassis_id"]
            )

    def _limiter(request: Request) -> tuple[PowerLimiter, _State]:
        _mine(request)
        if request.path_params["control_id"] != CONTROL_ID or limiter is None or state is None:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Control", request.path_params["control_id"]
            )
        return limiter, state

    def body(limiter: PowerLimiter, state: _State) -> dict[str, Any]:
        limit = limiter.limit_watts()
        return resource(
            "Control",
            path,
            Id=CONTROL_ID,
            Name=f"Power limit of {ctx.unit}",
            ControlType="Power",
            ControlMode=_mode(limiter, limit),
            SetPoint=limit if limit is not None else state.set_point,
            SetPointUnits="W",
            AllowableMin=_bounds(limiter)[0],
            AllowableMax=_bounds(limiter)[1],
            PhysicalContext="SystemBoard",
            Sensor={"DataSourceUri": f"{ctx.chassis_path}/Sensors/power", "Reading": _reading(ctx)},
            Status={"State": "Enabled", "Health": "OK"} if ctx.present() else {"State": "Absent"},
        )

    async def controls(request: Request) -> Response:
        _mine(request)
        members = page(request, [path] if limiter is not None else [])
        return respond(collection("ControlCollection", controls_path, "Controls", members))

    async def control(request: Request) -> Response:
        return tagged(request, body(*_limiter(request)))

    async def patch_control(request: Request) -> Response:
        limiter, state = _limiter(request)
        patch = await read_patch(request)
        current = body(limiter, state)
        check_if_match(request, current)
        mode = patch.pop("ControlMode", None)
        set_point = patch.pop("SetPoint", None)
        for name in patch:
            key = "PropertyNotWritable" if name in current else "PropertyUnknown"
            raise RedfishErrorReply(400, key, name)
        if mode is not None and mode not in MODES:
            raise RedfishErrorReply(400, "PropertyValueNotInList", json.dumps(mode), "ControlMode")
        if set_point is not None:
            if isinstance(set_point, bool) or not isinstance(set_point, int | float):
                raise RedfishErrorReply(
                    400, "PropertyValueTypeError", json.dumps(set_point), "SetPoint"
                )
            low, high = _bounds(limiter)
            if not low <= set_point <= high:
                raise RedfishErrorReply(
                    400, "PropertyValueOutOfRange", json.dumps(set_point), "SetPoint"
                )
            state.set_point = float(set_point)
        if mode == "Disabled":
            limiter.set_limit_watts(None)
            what = "lifted"
        else:  # a set-point, or Automatic: cap at the set-point
            limiter.set_limit_watts(state.set_point)
            what = f"{state.set_point:.2f} W"
        ctx.log.info(f"power limit {what}")
        return tagged(request, body(limiter, state))

    item = f"{ROOT}/Chassis/{{chassis_id}}/Controls"
    return [
        route(item, GET=controls),
        route(f"{item}/{{control_id}}", GET=control, PATCH=patch_control),
    ]
