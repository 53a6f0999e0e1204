"""``Chassis``: the unit's tray (``chassis``, with its locate LED), its ``sensors``, the
``environment`` metrics that excerpt them, the ``power`` and ``thermal`` subsystems, and the
``controls`` (the unit's power cap)."""

from __future__ import annotations

from functools import partial

from starlette.routing import BaseRoute

from racklet.bmc._http.responses import route
from racklet.bmc._http.uris import CHASSIS
from racklet.bmc._resources.chassis import (
    chassis,
    controls,
    environment,
    legacy,
    power,
    sensors,
    thermal,
)
from racklet.bmc._state.context import BmcContext

ITEM = f"{CHASSIS}/{{chassis_id}}"


def routes(ctx: BmcContext) -> list[BaseRoute]:
    return [
        route(CHASSIS, GET=partial(chassis.chassis_collection, ctx)),
        route(ITEM, GET=partial(chassis.get, ctx), PATCH=partial(chassis.patch, ctx)),
        route(f"{ITEM}/Actions/{chassis.RESET_ACTION}", POST=partial(chassis.reset, ctx)),
        route(f"{ITEM}/ResetActionInfo", GET=partial(chassis.action_info, ctx)),
        route(f"{ITEM}/Sensors", GET=partial(sensors.sensor_collection, ctx)),
        route(f"{ITEM}/Sensors/{{sensor_id}}", GET=partial(sensors.sensor, ctx)),
        route(
            f"{ITEM}/EnvironmentMetrics",
            GET=partial(environment.environment, ctx),
            PATCH=partial(environment.patch, ctx),
        ),
        route(f"{ITEM}/PowerSubsystem", GET=partial(power.subsystem, ctx)),
        route(f"{ITEM}/PowerSubsystem/PowerSupplies", GET=partial(power.supplies, ctx)),
        route(f"{ITEM}/PowerSubsystem/PowerSupplies/{{supply_id}}", GET=partial(power.supply, ctx)),
        route(f"{ITEM}/ThermalSubsystem", GET=partial(thermal.subsystem, ctx)),
        route(
            f"{ITEM}/Power", GET=partial(legacy.power, ctx), PATCH=partial(legacy.patch_power, ctx)
        ),
        route(f"{ITEM}/Thermal", GET=partial(legacy.thermal, ctx)),
        route(f"{ITEM}/ThermalSubsystem/Fans", GET=partial(thermal.fans, ctx)),
        route(f"{ITEM}/ThermalSubsystem/Fans/{{fan_id}}", GET=partial(thermal.fan, ctx)),
        route(f"{ITEM}/Controls", GET=partial(controls.controls, ctx)),
        route(
            f"{ITEM}/Controls/{{control_id}}",
            GET=partial(controls.control, ctx),
            PATCH=partial(controls.patch_control, ctx),
        ),
    ]
