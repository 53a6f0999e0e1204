"""``Managers``: the BMC itself (ManagerType BMC), what it manages, its firmware, and the
network protocols it serves (``NetworkProtocol``).

``NetworkProtocol`` reports what the request itself proves: HTTPS is enabled on the port
this request reached over TLS. Everything else (plain HTTP, SSH, IPMI) is off because the
BMC has no such listener, not because a setting says so; so nothing there is writable.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._context import MANAGER_ID, BmcContext
from racklet.bmc._errors import RedfishError
from racklet.bmc._http import page, respond, route
from racklet.bmc._schema import ROOT, collection, link, resource

MANAGERS = f"{ROOT}/Managers"


def routes(ctx: BmcContext) -> list[Route]:
    async def managers(request: Request) -> Response:
        members = page(request, [ctx.manager_path])
        return respond(collection("ManagerCollection", MANAGERS, "Manager Collection", members))

    firmware = f"{ROOT}/UpdateService/FirmwareInventory/{MANAGER_ID}"

    async def manager(request: Request) -> Response:
        if request.path_params["manager_id"] != MANAGER_ID:
            raise RedfishError(
                404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
            )
        return respond(
            resource(
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
                    "SoftwareImages": [link(firmware)],
                },
            )
        )

    async def network_protocol(request: Request) -> Response:
        _mine(request)
        server = request.scope.get("server") or (None, None)
        https: dict[str, object] = {"ProtocolEnabled": request.url.scheme == "https"}
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
            raise RedfishError(
                404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
            )

    return [
        route(MANAGERS, GET=managers),
        route(f"{MANAGERS}/{{manager_id}}", GET=manager),
        route(f"{MANAGERS}/{{manager_id}}/NetworkProtocol", GET=network_protocol),
    ]
