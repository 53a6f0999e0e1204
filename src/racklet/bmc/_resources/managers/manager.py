"""``Managers`` and ``Managers/bmc``: the BMC itself (ManagerType BMC), what it manages and
its firmware.

``Manager.Reset`` restarts the BMC (not the unit): if its standby firmware slot holds a newer,
untried image, the restart try-boots it once (see :mod:`racklet.bmc._state.bmc_slots`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Declared, Resource, allowable, validate_action
from racklet.bmc._http.odata import collection, link
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import no_content, page, read_object, respond
from racklet.bmc._http.uris import FIRMWARE_INVENTORY, MANAGERS
from racklet.bmc._resources.managers.common import mine
from racklet.bmc._state.certificates import https_collection
from racklet.bmc._state.context import MANAGER_ID, BmcContext

RESET_ACTION = "Manager.Reset"


class ManagerResetParameters(Declared):
    ResetType: Literal["GracefulRestart", "ForceRestart"] = "GracefulRestart"


class Manager(Resource):
    redfish_type = "Manager"

    Id: str = MANAGER_ID
    Name: str
    Description: str
    ManagerType: str = "BMC"
    Model: str
    FirmwareVersion: str
    UUID: str
    ServiceEntryPointUUID: str
    PowerState: str = "On"
    DateTime: str
    DateTimeLocalOffset: str = "+00:00"
    Status: dict[str, str]
    LogServices: dict[str, str]
    NetworkProtocol: dict[str, str]
    EthernetInterfaces: dict[str, str]
    Certificates: dict[str, str]
    Links: dict[str, Any]
    Actions: dict[str, Any] | None = None


def body(ctx: BmcContext) -> dict[str, Any]:
    firmware = f"{FIRMWARE_INVENTORY}/{MANAGER_ID}"
    images = [link(firmware)]
    if ctx.firmware is not None:
        images.append(link(f"{FIRMWARE_INVENTORY}/{MANAGER_ID}-standby"))
    manager = Manager(
        Id=MANAGER_ID,
        Name=f"BMC of {ctx.unit}",
        Description=f"The baseboard management controller in the tray of {ctx.unit}",
        ManagerType="BMC",
        Model="Racklet BMC",
        FirmwareVersion=ctx.firmware_version,
        UUID=ctx.uuid,
        ServiceEntryPointUUID=ctx.uuid,
        PowerState="On",
        DateTime=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        DateTimeLocalOffset="+00:00",  # the BMC keeps UTC
        Status={"State": "Enabled", "Health": "OK", "HealthRollup": "OK"},
        LogServices=link(f"{ctx.manager_path}/LogServices"),
        NetworkProtocol=link(f"{ctx.manager_path}/NetworkProtocol"),
        EthernetInterfaces=link(f"{ctx.manager_path}/EthernetInterfaces"),
        # Its device identity is its HTTPS certificate (role bmc/<unit>), as on the RMC.
        Certificates=link(https_collection(ctx.manager_path)),
        Links={
            "ManagerForServers": [link(ctx.system_path)],
            "ManagerForChassis": [link(ctx.chassis_path)],
            "ManagerInChassis": link(ctx.chassis_path),
            "ActiveSoftwareImage": link(firmware),
            "SoftwareImages": images,
        },
    )
    if ctx.firmware is not None:
        manager.Actions = {
            f"#{RESET_ACTION}": {
                "target": f"{ctx.manager_path}/Actions/{RESET_ACTION}",
                "ResetType@Redfish.AllowableValues": allowable(ManagerResetParameters, "ResetType"),
            }
        }
    return manager.body(ctx.manager_path)


async def managers(ctx: BmcContext, request: Request) -> Response:
    members = page(request, [ctx.manager_path])
    return respond(collection("ManagerCollection", MANAGERS, "Manager Collection", members))


async def get(ctx: BmcContext, request: Request) -> Response:
    mine(request)
    return respond(body(ctx))


async def reset(ctx: BmcContext, request: Request) -> Response:
    mine(request)
    if ctx.firmware is None:
        raise RedfishErrorReply(
            405, "OperationNotAllowed", resolution="This BMC cannot restart itself."
        )
    validate_action(ManagerResetParameters, await read_object(request), RESET_ACTION)
    await ctx.firmware.reset()
    return no_content()
