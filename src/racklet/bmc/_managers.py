"""``Managers``: the BMC itself (ManagerType BMC), what it manages, its firmware, and the
network protocols it serves (``NetworkProtocol``).

``NetworkProtocol`` reports what the request itself proves: HTTPS is enabled on the port
this request reached over TLS. Everything else (plain HTTP, SSH, IPMI) is off because the
BMC has no such listener, not because a setting says so; so nothing there is writable.

``Manager.Reset`` restarts the BMC (not the unit): if its standby firmware slot holds a newer,
untried image, the restart try-boots it once (see :mod:`racklet.bmc._state.bmc_slots`).
"""

from __future__ import annotations

import datetime as dt
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._http.odata import ROOT, collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import no_content, page, read_object, respond, route
from racklet.bmc._state.context import MANAGER_ID, BmcContext

MANAGERS = f"{ROOT}/Managers"
RESET_ACTION = "Manager.Reset"
RESET_TYPES = ("GracefulRestart", "ForceRestart")


def routes(ctx: BmcContext) -> list[Route]:
    async def managers(request: Request) -> Response:
        members = page(request, [ctx.manager_path])
        return respond(collection("ManagerCollection", MANAGERS, "Manager Collection", members))

    inventory = f"{ROOT}/UpdateService/FirmwareInventory"
    firmware = f"{inventory}/{MANAGER_ID}"
    images = [link(firmware)]
    if ctx.firmware is not None:
        images.append(link(f"{inventory}/{MANAGER_ID}-standby"))
    reset_target = f"{ctx.manager_path}/Actions/{RESET_ACTION}"

    async def manager(request: Request) -> Response:
        if request.path_params["manager_id"] != MANAGER_ID:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
            )
        body = resource(
            "Manager",
            ctx.manager_path,
            Id=MANAGER_ID,
            Name=f"BMC of {ctx.unit}",
            ManagerType="BMC",
            Model="Racklet BMC",
            FirmwareVersion=ctx.firmware_version,
            UUID=ctx.uuid,
            ServiceEntryPointUUID=ctx.uuid,
            PowerState="On",
            DateTime=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            Status={"State": "Enabled", "Health": "OK"},
            LogServices=link(f"{ctx.manager_path}/LogServices"),
            NetworkProtocol=link(f"{ctx.manager_path}/NetworkProtocol"),
            Links={
                "ManagerForServers": [link(ctx.system_path)],
                "ManagerForChassis": [link(ctx.chassis_path)],
                "ActiveSoftwareImage": link(firmware),
                "SoftwareImages": images,
            },
        )
        if ctx.firmware is not None:
            body["Actions"] = {
                f"#{RESET_ACTION}": {
                    "target": reset_target,
                    "ResetType@Redfish.AllowableValues": list(RESET_TYPES),
                }
            }
        return respond(body)

    async def reset(request: Request) -> Response:
        _mine(request)
        if ctx.firmware is None:
            raise RedfishErrorReply(
                405, "OperationNotAllowed", resolution="This BMC cannot restart itself."
            )
        body = await read_object(request)
        for name in body:
            if name != "ResetType":
                raise RedfishErrorReply(400, "ActionParameterUnknown", RESET_ACTION, name)
        reset_type = body.get("ResetType", "GracefulRestart")
        if reset_type not in RESET_TYPES:
            raise RedfishErrorReply(
                400,
                "ActionParameterValueNotInList",
                json.dumps(reset_type),
                "ResetType",
                RESET_ACTION,
                resolution=f"Use one of: {', '.join(RESET_TYPES)}.",
            )
        await ctx.firmware.reset()
        return no_content()

    async def network_protocol(request: Request) -> Response:
        _mine(request)
        server = request.scope.get("server") or (None, None)
        https: dict[str, object] = {"ProtocolEnabled": request.url.scheme == "https"}
        https["Certificates"] = link(f"{ctx.manager_path}/NetworkProtocol/HTTPS/Certificates")
        if https["ProtocolEnabled"] and isinstance(server[1], int):
            https["Port"] = server[1]
        return respond(
            resource(
                "ManagerNetworkProtocol",
                f"{ctx.manager_path}/NetworkProtocol",
                Id="NetworkProtocol",
                Name=f"Network protocols of the BMC of {ctx.unit}",
                HostName=f"{ctx.unit}-bmc",
                Status={"State": "Enabled", "Health": "OK"},
                HTTPS=https,
                HTTP={"ProtocolEnabled": False},
                SSH={"ProtocolEnabled": False},
                IPMI={"ProtocolEnabled": False},
                SSDP={"ProtocolEnabled": False},
            )
        )

    def _mine(request: Request) -> None:
        if request.path_params["manager_id"] != MANAGER_ID:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
            )

    return [
        route(MANAGERS, GET=managers),
        route(f"{MANAGERS}/{{manager_id}}", GET=manager),
        route(f"{MANAGERS}/{{manager_id}}/NetworkProtocol", GET=network_protocol),
        route(f"{MANAGERS}/{{manager_id}}/Actions/{RESET_ACTION}", POST=reset),
    ]
