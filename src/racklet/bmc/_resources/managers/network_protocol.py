"""``Managers/bmc/NetworkProtocol``: the protocols the BMC serves.

It reports what the request itself proves: HTTPS is enabled on the port this request
reached over TLS. Everything else (plain HTTP, SSH, IPMI) is off because the BMC has no such
listener, not because a setting says so; so nothing there is writable.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import link
from racklet.bmc._http.responses import respond
from racklet.bmc._resources.managers.common import mine
from racklet.bmc._state.context import BmcContext


class ManagerNetworkProtocol(Resource):
    redfish_type = "ManagerNetworkProtocol"

    Id: str = "NetworkProtocol"
    Name: str
    HostName: str
    Status: dict[str, str]
    HTTPS: dict[str, Any]
    HTTP: dict[str, Any]
    SSH: dict[str, Any]
    IPMI: dict[str, Any]
    SSDP: dict[str, Any]


async def get(ctx: BmcContext, request: Request) -> Response:
    mine(request)
    server = request.scope.get("server") or (None, None)
    https: dict[str, object] = {"ProtocolEnabled": request.url.scheme == "https"}
    https["Certificates"] = link(f"{ctx.manager_path}/NetworkProtocol/HTTPS/Certificates")
    if https["ProtocolEnabled"] and isinstance(server[1], int):
        https["Port"] = server[1]
    off = {"ProtocolEnabled": False}
    declared = ManagerNetworkProtocol(
        Id="NetworkProtocol",
        Name=f"Network protocols of the BMC of {ctx.unit}",
        HostName=f"{ctx.unit}-bmc",
        Status={"State": "Enabled", "Health": "OK"},
        HTTPS=https,
        HTTP=off,
        SSH=off,
        IPMI=off,
        SSDP=off,
    )
    return respond(declared.body(f"{ctx.manager_path}/NetworkProtocol"))
