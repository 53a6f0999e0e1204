"""The RMC's own chassis (``Chassis/rack``) in Redfish, and its ``/metrics``.

``/redfish/v1/Chassis/rack`` is the rack enclosure (``ChassisType: Rack``): its
``ThermalSubsystem/Fans`` are the rack fans (tachometer as ``SpeedPercent``); its
``Controls`` are one ``Percent`` control per cooling zone (the zone's speed set-point;
``ControlMode`` ``Automatic``, or ``Override`` while the zone is in failsafe, with the zone's
mode in ``Oem.Racklet.Mode``), one ``Temperature`` control per zone input (its set-point,
reading and PID gains as ``ControlLoop``) and one ``DutyCycle`` control per fan (the PWM
the fan loop drives); its ``EnvironmentMetrics`` carry the busbar's power and energy and the
PSU's rating as ``PowerLimitWatts``. ``IndicatorLED`` is the rack status LED,
``LocationIndicatorActive`` its locate LED (PATCH, Operator), and ``Oem.Racklet.Display`` the
rows of the front display. ``/metrics`` (public, as on a BMC) serves the same as OpenMetrics.

It is the rack enclosure of OCP's rack-manager profile too: ``Links.Contains`` and
``Links.ComputerSystems`` name the units' chassis and systems as the RMC aggregates them
(``unit-1_unit-1``), ``ManagedBy`` the RMC; ``Power`` and ``Thermal`` are the older schema's
view of the same state (:mod:`racklet.rmc._rack_legacy`); ``AssetTag`` is writable and kept in
the RMC's state dir (``chassis.json``, 0600); ``#Chassis.Reset`` resets every unit of the rack
in slot order, through their BMCs, as ``AggregationService.Reset`` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.config import write_private
from racklet.limits import InputRejected, parse_json
from racklet.metrics import metrics_response
from racklet.rmc import _uris
from racklet.rmc._cooling import ZoneMode
from racklet.rmc._messages import error, json_response
from racklet.rmc._rack import RackMonitor
from racklet.rmc._rack_legacy import power_body, thermal_body

RACK_ID = "rack"
RACK = f"{_uris.ROOT}/Chassis/{RACK_ID}"
THERMAL = f"{RACK}/ThermalSubsystem"
FANS = f"{THERMAL}/Fans"
CONTROLS = f"{RACK}/Controls"
ENVIRONMENT = f"{RACK}/EnvironmentMetrics"
POWER = f"{RACK}/Power"
LEGACY_THERMAL = f"{RACK}/Thermal"
RESET = f"{RACK}/Actions/Chassis.Reset"
RESET_TYPES = ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle")
"""What ``Chassis.Reset`` of the rack passes to every unit's ``ComputerSystem.Reset``."""
STATE_FILE = "chassis.json"
MAX_ASSET_TAG = 64

UnitLinks = Callable[[], Awaitable[dict[str, list[str]]]]
"""The units' aggregated members: ``{"Chassis": [...], "Systems": [...]}``."""
ResetUnits = Callable[[Request, str], Awaitable[Response]]
"""Reset every unit's system with one ``ResetType``; the first error answer, else 204."""


def _link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def _status(health: str = "OK") -> dict[str, str]:
    return {"State": "Enabled", "Health": health}


class RackResources:
    def __init__(self, monitor: RackMonitor, state_dir: Path, manager: str) -> None:
        self.monitor = monitor
        self.asset_tag = ""
        self._state = state_dir / STATE_FILE
        self._manager = manager
        self.unit_links: UnitLinks | None = None
        self.reset_units: ResetUnits | None = None
        """Set by the aggregator (it knows the BMCs)."""

    def load(self) -> None:
        """Read the kept ``AssetTag`` (blocking: run it in a thread)."""
        try:
            document = json.loads(self._state.read_text())
        except (OSError, ValueError):
            return
        tag = document.get("AssetTag") if isinstance(document, dict) else None
        if isinstance(tag, str):
            self.asset_tag = tag[:MAX_ASSET_TAG]

    # -- documents ---------------------------------------------------------------------------

    def chassis(self) -> dict[str, Any]:
        m = self.monitor
        return {
            "@odata.type": "#Chassis.v1_28_0.Chassis",
            "@odata.id": RACK,
            "Id": RACK_ID,
            "Name": f"Rack {m.board.rack}",
            "ChassisType": "Rack",
            "Status": _status(m.health()),
            "Manufacturer": m.board.manufacturer,
            "Model": m.board.model,
            "PartNumber": m.board.part_number,
            "SerialNumber": m.board.serial_number,
            "AssetTag": self.asset_tag,
            "PowerState": "On" if m.monitor_ok and m.reading and m.reading.volts > 0 else "Off",
            "IndicatorLED": m.status_led(),
            "LocationIndicatorActive": m.locate,
            "ThermalSubsystem": _link(THERMAL),
            "EnvironmentMetrics": _link(ENVIRONMENT),
            "Controls": _link(CONTROLS),
            "Power": _link(POWER),
            "Thermal": _link(LEGACY_THERMAL),
            "Links": {
                "ManagedBy": [_link(self._manager)],
                "ManagersInChassis": [_link(self._manager)],
                "Contains": [],
                "ComputerSystems": [],
            },
            "Actions": {
                "#Chassis.Reset": {
                    "target": RESET,
                    "ResetType@Redfish.AllowableValues": list(RESET_TYPES),
                }
            },
            "@Redfish.WriteableProperties": ["AssetTag", "LocationIndicatorActive"],
            "Oem": {"Racklet": {"Display": m.display_lines()}},
        }

    async def linked_chassis(self) -> dict[str, Any]:
        """:meth:`chassis` with the units' chassis and systems in its ``Links``."""
        body = self.chassis()
        if self.unit_links is not None:
            found = await self.unit_links()
            body["Links"]["Contains"] = [_link(uri) for uri in found.get("Chassis", [])]
            body["Links"]["ComputerSystems"] = [_link(uri) for uri in found.get("Systems", [])]
        return body

    def thermal(self) -> dict[str, Any]:
        zones = self.monitor.cooling.zones.values()
        failsafe = any(state.mode is ZoneMode.FAILSAFE for state in zones)
        return {
            "@odata.type": "#ThermalSubsystem.v1_5_0.ThermalSubsystem",
            "@odata.id": THERMAL,
            "Id": "ThermalSubsystem",
            "Name": "Rack cooling",
            "Status": _status("Warning" if failsafe else "OK"),
            "Fans": _link(FANS),
        }

    def fan(self, name: str) -> dict[str, Any]:
        fan = self.monitor.fans[name]
        rpm = fan.rpm()
        return {
            "@odata.type": "#Fan.v1_6_0.Fan",
            "@odata.id": f"{FANS}/{name}",
            "Id": name,
            "Name": f"Rack fan {name}",
            "PhysicalContext": "Chassis",
            "Status": _status("Critical" if fan.duty_percent() > 0 and rpm < 1 else "OK"),
            "SpeedPercent": {
                "Reading": round(100.0 * rpm / fan.rated_rpm, 1),
                "SpeedRPM": rpm,
                "DataSourceUri": f"{CONTROLS}/{name}-pwm",
            },
        }

    def controls(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for state in self.monitor.cooling.zones.values():
            zone = state.zone
            failsafe = state.mode is ZoneMode.FAILSAFE
            found[zone.name] = {
                "ControlType": "Percent",
                "Name": f"Cooling zone {zone.name}",
                "SetPoint": round(state.setpoint_percent, 1),
                "SetPointUnits": "%",
                "ControlMode": "Override" if failsafe else "Automatic",
                "Implementation": "Programmable",
                "AllowableMin": zone.min_percent,
                "AllowableMax": 100.0,
                "Status": _status("Warning" if failsafe else "OK"),
                "Oem": {
                    "Racklet": {
                        "Mode": state.mode.value,
                        "FailsafePercent": zone.failsafe_percent,
                        "LostSensors": sorted(state.lost),
                        "Fans": [f"{FANS}/{fan}" for fan in zone.fans],
                    }
                },
            }
            for item in zone.inputs:
                reading = state.readings.get(item.sensor)
                found[f"{zone.name}-{item.sensor}"] = {
                    "ControlType": "Temperature",
                    "Name": f"{item.sensor} in zone {zone.name}",
                    "SetPoint": item.setpoint_celsius,
                    "SetPointUnits": "Cel",
                    "ControlMode": "Automatic",
                    "Implementation": "Programmable",
                    "Sensor": {
                        "Reading": None if item.sensor in state.lost else reading,
                    },
                    "ControlLoop": {
                        "Proportional": item.pid.kp,
                        "Integral": item.pid.ki,
                        "Differential": item.pid.kd,
                    },
                    "Status": _status("Warning" if item.sensor in state.lost else "OK"),
                }
        for name, fan in self.monitor.fans.items():
            found[f"{name}-pwm"] = {
                "ControlType": "DutyCycle",
                "Name": f"PWM of {name}",
                "SetPoint": round(fan.duty_percent(), 1),
                "SetPointUnits": "%",
                "ControlMode": "Automatic",
                "Implementation": "Direct",
                "AllowableMin": 0.0,
                "AllowableMax": 100.0,
                "Status": _status(),
            }
        return found

    def environment(self) -> dict[str, Any]:
        m = self.monitor
        watts = m.reading.watts if m.monitor_ok and m.reading is not None else None
        return {
            "@odata.type": "#EnvironmentMetrics.v1_5_0.EnvironmentMetrics",
            "@odata.id": ENVIRONMENT,
            "Id": "EnvironmentMetrics",
            "Name": "Rack power and energy",
            "PowerWatts": {"Reading": watts},
            "EnergyJoules": {"Reading": round(m.energy_joules, 3)},
            "PowerLimitWatts": {
                "SetPoint": m.board.psu_rated_watts,
                "ControlMode": "Disabled",
            },
            **(
                {}
                if m.fan_meter is None
                else {
                    "Oem": {
                        "Racklet": {
                            "FansPowerWatts": m.fan_meter.watts,
                            "UnaccountedPowerWatts": m.unaccounted_watts(),
                            "FansEnergyJoules": round(m.fan_meter.energy_joules, 3),
                        }
                    }
                }
            ),
        }

    # -- handlers ----------------------------------------------------------------------------

    async def get_chassis(self, request: Request) -> Response:
        return json_response(await self.linked_chassis())

    async def patch_chassis(self, request: Request) -> Response:
        try:
            body = parse_json(await request.body() or b"null")
        except InputRejected:
            return error(400, "MalformedJSON")
        if not isinstance(body, dict) or not body:
            return error(400, "MalformedJSON")
        unknown = sorted(set(body) - {"LocationIndicatorActive", "AssetTag"})
        if unknown:
            return error(400, "PropertyNotWritable", unknown[0])
        locate, tag = body.get("LocationIndicatorActive"), body.get("AssetTag")
        if "LocationIndicatorActive" in body and not isinstance(locate, bool):
            return error(
                400, "PropertyValueTypeError", json.dumps(locate), "LocationIndicatorActive"
            )
        if "AssetTag" in body and (not isinstance(tag, str) or len(tag) > MAX_ASSET_TAG):
            return error(400, "PropertyValueTypeError", json.dumps(tag), "AssetTag")
        if isinstance(tag, str) and tag != self.asset_tag:
            document = json.dumps({"AssetTag": tag}) + "\n"
            await asyncio.to_thread(write_private, self._state, document)
            self.asset_tag = tag
        if isinstance(locate, bool):
            self.monitor.locate = locate
        return json_response(await self.linked_chassis())

    async def reset(self, request: Request) -> Response:
        try:
            body = parse_json(await request.body() or b"null")
        except InputRejected:
            return error(400, "MalformedJSON")
        if not isinstance(body, dict):
            return error(400, "MalformedJSON")
        reset_type = body.get("ResetType")
        if reset_type is None:
            return error(400, "ActionParameterMissing", "Chassis.Reset", "ResetType")
        if reset_type not in RESET_TYPES:
            return error(
                400, "ActionParameterValueNotInList", str(reset_type), "ResetType", "Chassis.Reset"
            )
        if self.reset_units is None:
            return error(404, "ResourceNotFound", "Action", "Chassis.Reset")
        return await self.reset_units(request, str(reset_type))

    async def get_power(self, request: Request) -> Response:
        return json_response(power_body(self.monitor, POWER))

    async def get_legacy_thermal(self, request: Request) -> Response:
        return json_response(thermal_body(self.monitor, LEGACY_THERMAL, FANS))

    async def get_thermal(self, request: Request) -> Response:
        return json_response(self.thermal())

    async def get_fans(self, request: Request) -> Response:
        members = [_link(f"{FANS}/{name}") for name in self.monitor.fans]
        return json_response(
            {
                "@odata.type": "#FanCollection.FanCollection",
                "@odata.id": FANS,
                "Name": "Rack fans",
                "Members": members,
                "Members@odata.count": len(members),
            }
        )

    async def get_fan(self, request: Request) -> Response:
        name = request.path_params["fan"]
        if name not in self.monitor.fans:
            return error(404, "ResourceNotFound", "Fan", name)
        return json_response(self.fan(name))

    async def get_controls(self, request: Request) -> Response:
        members = [_link(f"{CONTROLS}/{name}") for name in self.controls()]
        return json_response(
            {
                "@odata.type": "#ControlCollection.ControlCollection",
                "@odata.id": CONTROLS,
                "Name": "Rack controls",
                "Members": members,
                "Members@odata.count": len(members),
            }
        )

    async def get_control(self, request: Request) -> Response:
        name = request.path_params["control"]
        found = self.controls().get(name)
        if found is None:
            return error(404, "ResourceNotFound", "Control", name)
        return json_response(
            {
                "@odata.type": "#Control.v1_7_0.Control",
                "@odata.id": f"{CONTROLS}/{name}",
                "Id": name,
                **found,
            }
        )

    async def get_environment(self, request: Request) -> Response:
        return json_response(self.environment())

    def routes(self) -> list[Route]:
        return [
            Route(RACK, self.get_chassis, methods=["GET"]),
            Route(RACK, self.patch_chassis, methods=["PATCH"]),
            Route(THERMAL, self.get_thermal, methods=["GET"]),
            Route(FANS, self.get_fans, methods=["GET"]),
            Route(FANS + "/{fan}", self.get_fan, methods=["GET"]),
            Route(CONTROLS, self.get_controls, methods=["GET"]),
            Route(CONTROLS + "/{control}", self.get_control, methods=["GET"]),
            Route(ENVIRONMENT, self.get_environment, methods=["GET"]),
            Route(POWER, self.get_power, methods=["GET"]),
            Route(LEGACY_THERMAL, self.get_legacy_thermal, methods=["GET"]),
            Route(RESET, self.reset, methods=["POST"]),
        ]


class _RackCollector(Collector):
    def __init__(self, monitor: RackMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[Metric]:
        m = self._monitor
        rack = m.board.rack
        reading = m.reading if m.monitor_ok else None

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["rack"])
            if value is not None:
                family.add_metric([rack], value)
            return family

        yield gauge(
            "racklet_rack_power_watts",
            "Busbar power (all units and rack fans).",
            reading.watts if reading else None,
        )
        yield gauge("racklet_rack_volts", "Busbar voltage.", reading.volts if reading else None)
        yield gauge(
            "racklet_rack_power_budget_watts", "The PSU's rated power.", m.board.psu_rated_watts
        )
        energy = CounterMetricFamily(
            "racklet_rack_energy_joules",
            "Energy through the busbar, integrated from its monitor's samples.",
            labels=["rack"],
            created=m.energy_created,
        )
        energy.add_metric([rack], m.energy_joules, created=m.energy_created)
        yield energy
        if m.fan_meter is not None:
            yield gauge(
                "racklet_rack_fans_power_watts", "Power of the rack fans' feed.", m.fan_meter.watts
            )
            fans = CounterMetricFamily(
                "racklet_rack_fans_energy_joules",
                "Energy of the rack fans' feed, integrated from its monitor's samples.",
                labels=["rack"],
                created=m.energy_created,
            )
            fans.add_metric([rack], m.fan_meter.energy_joules, created=m.energy_created)
            yield fans
        rpm = GaugeMetricFamily(
            "racklet_rack_fan_rpm", "Rack fan speed from its tachometer.", labels=["rack", "fan"]
        )
        duty = GaugeMetricFamily(
            "racklet_rack_fan_duty_ratio", "PWM duty of a rack fan.", labels=["rack", "fan"]
        )
        for name, fan in m.fans.items():
            rpm.add_metric([rack, name], fan.rpm())
            duty.add_metric([rack, name], fan.duty_percent() / 100.0)
        yield rpm
        yield duty
        setpoint = GaugeMetricFamily(
            "racklet_rack_zone_setpoint_ratio",
            "A cooling zone's fan speed set-point (share of rated speed).",
            labels=["rack", "zone"],
        )
        failsafe = GaugeMetricFamily(
            "racklet_rack_zone_failsafe",
            "1 while a cooling zone is in failsafe.",
            labels=["rack", "zone"],
        )
        celsius = GaugeMetricFamily(
            "racklet_rack_sensor_temperature_celsius",
            "A cooling zone input's temperature.",
            labels=["rack", "zone", "sensor"],
        )
        for state in m.cooling.zones.values():
            zone = state.zone.name
            setpoint.add_metric([rack, zone], state.setpoint_percent / 100.0)
            failsafe.add_metric([rack, zone], 1.0 if state.mode is ZoneMode.FAILSAFE else 0.0)
            for sensor, value in state.readings.items():
                if sensor not in state.lost and value is not None:
                    celsius.add_metric([rack, zone, sensor], value)
        yield setpoint
        yield failsafe
        yield celsius
        alerts = GaugeMetricFamily(
            "racklet_rack_alerts",
            "Active alerts of the rack (what its status LED and display show), by severity.",
            labels=["rack", "severity"],
        )
        active = [severity for severity, _ in m.alerts()]
        for severity in ("Critical", "Warning"):
            alerts.add_metric([rack, severity], float(active.count(severity)))
        yield alerts
        speed = getattr(m.board.clock, "speed", None)
        if isinstance(speed, int | float):  # only a twin's clock runs at a speed
            yield GaugeMetricFamily(
                "racklet_twin_speed",
                "Simulated seconds per wall second: divide a twin counter's rate() by it.",
                value=float(speed),
            )


def metrics_route(monitor: RackMonitor | None) -> Route:
    """``/metrics``: the rack's shared resources (empty families on an RMC without a board)."""
    registry = CollectorRegistry(auto_describe=False)
    if monitor is not None:
        registry.register(_RackCollector(monitor))

    async def metrics(request: Request) -> Response:
        return metrics_response(registry, request)  # the format the scraper accepts

    return Route("/metrics", metrics, methods=["GET"])
