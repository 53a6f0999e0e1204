"""``Chassis``: the unit's tray and its sensors (power, voltage, current, energy,
temperature) and EnvironmentMetrics, all read from the BMC's last sample; its locate LED
(``LocationIndicatorActive``, the one writable property: PATCH, Operator).

Energy is ``EnergyJoules`` (Reading in J): the Sensor schema reserves ``EnergykWh`` for
large-scale metering and names joules for device-level consumption, which a unit is. It is a
counter kept across BMC restarts; ``SensorResetTime`` says when it began.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc import _power_limit as power_limit
from racklet.bmc._context import BmcContext
from racklet.bmc._http import check_if_match, page, read_patch, respond, route, tagged
from racklet.bmc._message_registry import RedfishErrorReply
from racklet.bmc._schema import ROOT, collection, link, resource

CHASSIS = f"{ROOT}/Chassis"


@dataclass(frozen=True)
class _SensorKind:
    id: str
    name: str
    reading_type: str
    units: str
    context: str
    metric: str  # the EnvironmentMetrics property that excerpts it


_SENSORS = (
    _SensorKind("power", "Unit input power", "Power", "W", "SystemBoard", "PowerWatts"),
    _SensorKind("voltage", "Unit input voltage", "Voltage", "V", "SystemBoard", "Voltage"),
    _SensorKind("current", "Unit input current", "Current", "A", "SystemBoard", "CurrentAmps"),
    _SensorKind("energy", "Unit energy", "EnergyJoules", "J", "SystemBoard", "EnergyJoules"),
    _SensorKind(
        "temperature", "SoC temperature", "Temperature", "Cel", "CPU", "TemperatureCelsius"
    ),
)
_BY_ID = {kind.id: kind for kind in _SENSORS}


def _reading(ctx: BmcContext, kind: _SensorKind) -> float | None:
    meter = ctx.meter
    if kind.id == "temperature":
        return (
            round(meter.celsius, 2) if meter.temperature_ok and meter.celsius is not None else None
        )
    if kind.id == "energy":
        return round(meter.energy_joules, 3)
    if not meter.monitor_ok or meter.reading is None:
        return None
    value = {"power": meter.reading.watts, "voltage": meter.reading.volts}.get(
        kind.id, meter.reading.amperes
    )
    return round(value, 4)


def _status(ctx: BmcContext, reading: float | None) -> dict[str, str]:
    if not ctx.present():
        return {"State": "Absent"}
    if reading is None:
        return {"State": "UnavailableOffline", "Health": "Critical"}
    return {"State": "Enabled", "Health": "OK"}


def routes(ctx: BmcContext) -> list[Route]:
    sensors_path = f"{ctx.chassis_path}/Sensors"

    def _mine(request: Request) -> None:
        if request.path_params["chassis_id"] != ctx.unit:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Chassis", request.path_params["chassis_id"]
            )

    async def chassis_collection(request: Request) -> Response:
        members = page(request, [ctx.chassis_path])
        return respond(collection("ChassisCollection", CHASSIS, "Chassis Collection", members))

    def chassis_body() -> dict[str, Any]:
        present = ctx.present()
        led = ctx.board.locate_led
        return resource(
            "Chassis",
            ctx.chassis_path,
            Id=ctx.unit,
            Name=f"Racklet tray {ctx.unit}",
            ChassisType="Sled",
            PowerState=ctx.power.power_state(),
            Status={"State": "Enabled", "Health": "OK"} if present else {"State": "Absent"},
            MaxPowerWatts=ctx.board.max_power_watts,
            Sensors=link(sensors_path),
            EnvironmentMetrics=link(f"{ctx.chassis_path}/EnvironmentMetrics"),
            PowerSubsystem=link(f"{ctx.chassis_path}/PowerSubsystem"),
            ThermalSubsystem=link(f"{ctx.chassis_path}/ThermalSubsystem"),
            Controls=link(f"{ctx.chassis_path}/Controls"),
            Links={
                "ComputerSystems": [link(ctx.system_path)],
                "ManagedBy": [link(ctx.manager_path)],
            },
            **({} if led is None else {"LocationIndicatorActive": led.is_lit()}),
        )

    async def chassis(request: Request) -> Response:
        _mine(request)
        return tagged(request, chassis_body())

    async def patch_chassis(request: Request) -> Response:
        """Only the locate LED is writable (``LocationIndicatorActive``, Operator)."""
        _mine(request)
        body = await read_patch(request)
        current = chassis_body()
        check_if_match(request, current)
        led = ctx.board.locate_led
        for name, value in body.items():
            if name != "LocationIndicatorActive" or led is None:
                key = "PropertyNotWritable" if name in current else "PropertyUnknown"
                raise RedfishErrorReply(400, key, name)
            if not isinstance(value, bool):
                raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(value), name)
        assert led is not None
        led.set(bool(body["LocationIndicatorActive"]))
        return tagged(request, chassis_body())

    async def sensors(request: Request) -> Response:
        _mine(request)
        members = page(request, [f"{sensors_path}/{kind.id}" for kind in _SENSORS])
        return respond(collection("SensorCollection", sensors_path, "Sensors", members))

    async def sensor(request: Request) -> Response:
        _mine(request)
        kind = _BY_ID.get(request.path_params["sensor_id"])
        if kind is None:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Sensor", request.path_params["sensor_id"]
            )
        reading = _reading(ctx, kind)
        extra: dict[str, Any] = {}
        if kind.id == "energy":  # an accumulating sensor says when its count began
            created = dt.datetime.fromtimestamp(ctx.meter.energy_created, dt.UTC)
            extra["SensorResetTime"] = created.isoformat(timespec="seconds")
        return respond(
            resource(
                "Sensor",
                f"{sensors_path}/{kind.id}",
                Id=kind.id,
                Name=kind.name,
                ReadingType=kind.reading_type,
                ReadingUnits=kind.units,
                Reading=reading,
                PhysicalContext=kind.context,
                Status=_status(ctx, reading),
                **extra,
            )
        )

    async def environment(request: Request) -> Response:
        _mine(request)
        excerpts: dict[str, Any] = {
            kind.metric: {
                "DataSourceUri": f"{sensors_path}/{kind.id}",
                "Reading": _reading(ctx, kind),
            }
            for kind in _SENSORS
        }
        return respond(
            resource(
                "EnvironmentMetrics",
                f"{ctx.chassis_path}/EnvironmentMetrics",
                Id="EnvironmentMetrics",
                Name=f"Environment metrics of {ctx.unit}",
                **excerpts,
                **power_limit.excerpt(ctx),
            )
        )

    item = f"{CHASSIS}/{{chassis_id}}"
    return [
        route(CHASSIS, GET=chassis_collection),
        route(item, GET=chassis, PATCH=patch_chassis),
        route(f"{item}/Sensors", GET=sensors),
        route(f"{item}/Sensors/{{sensor_id}}", GET=sensor),
        route(f"{item}/EnvironmentMetrics", GET=environment),
    ]
