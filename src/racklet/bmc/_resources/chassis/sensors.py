"""``Chassis/<unit>/Sensors``: the unit's power, voltage, current, energy and temperature,
read from the BMC's last sample.

Energy is ``EnergyJoules`` (Reading in J): the Sensor schema reserves ``EnergykWh`` for
large-scale metering and names joules for device-level consumption, which a unit is. It is a
counter kept across BMC restarts; ``SensorResetTime`` says when it began.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import collection
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, respond
from racklet.bmc._resources.chassis.common import mine
from racklet.bmc._state.context import BmcContext


@dataclass(frozen=True)
class SensorKind:
    id: str
    name: str
    reading_type: str
    units: str
    context: str
    metric: str  # the EnvironmentMetrics property that excerpts it


SENSORS = (
    SensorKind("power", "Unit input power", "Power", "W", "SystemBoard", "PowerWatts"),
    SensorKind("voltage", "Unit input voltage", "Voltage", "V", "SystemBoard", "Voltage"),
    SensorKind("current", "Unit input current", "Current", "A", "SystemBoard", "CurrentAmps"),
    SensorKind("energy", "Unit energy", "EnergyJoules", "J", "SystemBoard", "EnergyJoules"),
    SensorKind("temperature", "SoC temperature", "Temperature", "Cel", "CPU", "TemperatureCelsius"),
)
_BY_ID = {kind.id: kind for kind in SENSORS}


class Sensor(Resource):
    redfish_type = "Sensor"

    Id: str
    Name: str
    ReadingType: str
    ReadingUnits: str
    Reading: float | None
    PhysicalContext: str
    Status: dict[str, str]
    SensorResetTime: str | None = None
    Thresholds: dict[str, Any] | None = None


def reading(ctx: BmcContext, kind: SensorKind) -> float | None:
    """The sensor's value from the last sample (None: the device did not answer)."""
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


def _status(ctx: BmcContext, value: float | None) -> dict[str, str]:
    if not ctx.present():
        return {"State": "Absent"}
    if value is None:
        return {"State": "UnavailableOffline", "Health": "Critical"}
    return {"State": "Enabled", "Health": "OK"}


def sensors_path(ctx: BmcContext) -> str:
    return f"{ctx.chassis_path}/Sensors"


def sensor_body(ctx: BmcContext, kind: SensorKind) -> dict[str, Any]:
    value = reading(ctx, kind)
    sensor = Sensor(
        Id=kind.id,
        Name=kind.name,
        ReadingType=kind.reading_type,
        ReadingUnits=kind.units,
        Reading=value,
        PhysicalContext=kind.context,
        Status=_status(ctx, value),
    )
    if kind.id == "temperature":  # where the BMC raises its SensorEvent caution
        caution = {"Reading": ctx.meter.temperature_caution, "Activation": "Increasing"}
        sensor.Thresholds = {"UpperCaution": caution}
    if kind.id == "energy":  # an accumulating sensor says when its count began
        created = dt.datetime.fromtimestamp(ctx.meter.energy_created, dt.UTC)
        sensor.SensorResetTime = created.isoformat(timespec="seconds")
    return sensor.body(f"{sensors_path(ctx)}/{kind.id}")


async def sensor_collection(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    path = sensors_path(ctx)
    members = page(request, [f"{path}/{kind.id}" for kind in SENSORS])
    return respond(collection("SensorCollection", path, "Sensors", members))


async def sensor(ctx: BmcContext, request: Request) -> Response:
    mine(ctx, request)
    kind = _BY_ID.get(request.path_params["sensor_id"])
    if kind is None:
        raise RedfishErrorReply(404, "ResourceNotFound", "Sensor", request.path_params["sensor_id"])
    return respond(sensor_body(ctx, kind))
