"""``Chassis/rack/Power`` and ``Chassis/rack/Thermal``: the rack in the older Redfish schema.

OCP's rack-manager profile (and many tools: redfishtool's ``chassis Power``, DMTF's
``rf_power_equipment``-era scripts) still read ``Power`` and ``Thermal`` rather than
``PowerSubsystem``/``ThermalSubsystem``. Both are drawn from the same state as the newer
resources (:class:`racklet.rmc.RackMonitor`): the busbar's monitor is the rack's
``PowerControl`` (its reading, the last minute's min/max/average, the PSU's rating as the
limit) and its one ``Voltages`` entry; the PSU is the one ``PowerSupplies`` entry; the cooling
zones' inputs (each slot's unit temperature) are the ``Temperatures`` and the rack fans the
``Fans``. Read-only: the limit
is the PSU's rating, which no request changes (power capping is the controller's).
"""

from __future__ import annotations

from typing import Any

from racklet.rmc._cooling import ZoneMode
from racklet.rmc._rack import RackMonitor

POWER_METRICS_MINUTES = 1


def _status(health: str = "OK", state: str = "Enabled") -> dict[str, str]:
    return {"State": state, "Health": health}


def _address(monitor: object) -> int:
    address = getattr(monitor, "address", None)
    return address if isinstance(address, int) else 0


def power_body(monitor: RackMonitor, path: str) -> dict[str, Any]:
    """The rack's ``Power`` resource at ``path``."""
    m = monitor
    reading = m.reading if m.monitor_ok else None
    window = m.busbar.window() if m.monitor_ok else None
    low, high, average = (None, None, None) if window is None else window
    metrics = {
        "IntervalInMin": POWER_METRICS_MINUTES,
        "MinConsumedWatts": low,
        "MaxConsumedWatts": high,
        "AverageConsumedWatts": None if average is None else round(average, 3),
    }
    health = "OK" if m.monitor_ok else "Critical"
    watts = None if reading is None else round(reading.watts, 3)
    return {
        "@odata.type": "#Power.v1_7_3.Power",
        "@odata.id": path,
        "Id": "Power",
        "Name": "Rack power",
        "PowerControl": [
            {
                "@odata.id": f"{path}#/PowerControl/0",
                "MemberId": "0",
                "Name": "Busbar",
                "PhysicalContext": "DCBus",
                "PowerConsumedWatts": watts,
                "PowerCapacityWatts": m.board.psu_rated_watts,
                "PowerMetrics": metrics,
                "PowerLimit": {
                    "LimitInWatts": m.board.psu_rated_watts,
                    "LimitException": "NoAction",
                },
                "Status": _status(health),
            }
        ],
        "Voltages": [
            {
                "@odata.id": f"{path}#/Voltages/0",
                "MemberId": "0",
                "Name": "Busbar voltage",
                # The busbar monitor's SMBus address names it on the rack board, as a BMC
                # numbers its unit's voltage (0 for a monitor not on a bus).
                "SensorNumber": _address(m.board.busbar_monitor),
                "ReadingVolts": None if reading is None else round(reading.volts, 3),
                "PhysicalContext": "DCBus",
                "Status": _status(health),
            }
        ],
        "PowerSupplies": [
            {
                "@odata.id": f"{path}#/PowerSupplies/0",
                "MemberId": "0",
                "Name": "Rack PSU",
                "PowerSupplyType": "DC",
                "PowerCapacityWatts": m.board.psu_rated_watts,
                "LastPowerOutputWatts": watts,
                "Status": _status(health),
            }
        ],
        "Redundancy": [],
    }


def thermal_body(monitor: RackMonitor, path: str, fans_path: str) -> dict[str, Any]:
    """The rack's ``Thermal`` resource at ``path`` (its fans link to ``fans_path/<name>``)."""
    m = monitor
    temperatures: list[dict[str, Any]] = []
    for state in m.cooling.zones.values():
        for item in state.zone.inputs:
            lost = item.sensor in state.lost
            index = len(temperatures)
            temperatures.append(
                {
                    "@odata.id": f"{path}#/Temperatures/{index}",
                    "MemberId": str(index),
                    "Name": f"{item.sensor} CPU temp",
                    "ReadingCelsius": None if lost else state.readings.get(item.sensor),
                    "PhysicalContext": "CPU",
                    "Status": _status("Warning" if lost else "OK"),
                }
            )
    fans: list[dict[str, Any]] = []
    failsafe = any(state.mode is ZoneMode.FAILSAFE for state in m.cooling.zones.values())
    for index, (name, fan) in enumerate(m.fans.items()):
        rpm = fan.rpm()
        stalled = fan.duty_percent() > 0 and rpm < 1
        fans.append(
            {
                "@odata.id": f"{path}#/Fans/{index}",
                "MemberId": str(index),
                "Name": name,
                "PhysicalContext": "Chassis",
                "HotPluggable": False,
                "Reading": round(rpm),
                "ReadingUnits": "RPM",
                "Status": _status("Critical" if stalled else "OK"),
                "RelatedItem": [{"@odata.id": f"{fans_path}/{name}"}],
            }
        )
    return {
        "@odata.type": "#Thermal.v1_7_3.Thermal",
        "@odata.id": path,
        "Id": "Thermal",
        "Name": "Rack thermal",
        "Status": _status("Warning" if failsafe else "OK"),
        "Temperatures": temperatures,
        "Fans": fans,
    }
