"""``Managers/bmc/NetworkProtocol``: the protocols the BMC serves.

It reports what the request itself proves: HTTPS is enabled on the port this request
reached over TLS. Everything else (plain HTTP, SSH, IPMI, SSDP) is off because the BMC has no
such listener, so it has no port either (``Port: null``). The one thing a PATCH may say is
that a protocol stays off (``ProtocolEnabled: false``): turning one on is refused, since
nothing would listen.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import WRITABLE, Declared, Resource, validate_patch
from racklet.bmc._http.odata import link
from racklet.bmc._http.responses import read_patch, respond
from racklet.bmc._resources.managers.common import mine, network_settings
from racklet.bmc._state.context import BmcContext


class Off(Declared):
    """A protocol the BMC does not serve: no listener, no port; it may only stay off."""

    ProtocolEnabled: Annotated[Literal[False], WRITABLE] = False
    Port: None = None


class Ssdp(Off):
    NotifyIPv6Scope: None = None
    NotifyMulticastIntervalSeconds: None = None
    NotifyTTL: None = None


def _off() -> Off:
    return Off(ProtocolEnabled=False, Port=None)


class ManagerNetworkProtocol(Resource):
    redfish_type = "ManagerNetworkProtocol"

    Id: str = "NetworkProtocol"
    Name: str
    HostName: str
    FQDN: str
    Status: dict[str, str]
    HTTPS: dict[str, Any]
    HTTP: Off
    SSH: Off
    IPMI: Off
    SSDP: Ssdp


async def get(ctx: BmcContext, request: Request) -> Response:
    mine(request)
    settings = await network_settings(ctx)
    server = request.scope.get("server") or (None, None)
    https: dict[str, object] = {"ProtocolEnabled": request.url.scheme == "https"}
    https["Certificates"] = link(f"{ctx.manager_path}/NetworkProtocol/HTTPS/Certificates")
    if https["ProtocolEnabled"] and isinstance(server[1], int):
        https["Port"] = server[1]
    declared = ManagerNetworkProtocol(
        Id="NetworkProtocol",
        Name=f"Network protocols of the BMC of {ctx.unit}",
        # What the management port is configured with (EthernetInterfaces/eth0), else the
        # name the rack CA certified for this BMC.
        HostName=settings.host_name or f"{ctx.unit}-bmc",
        FQDN=settings.fqdn or f"{ctx.unit}-bmc",
        Status={"State": "Enabled", "Health": "OK"},
        HTTPS=https,
        HTTP=_off(),
        SSH=_off(),
        IPMI=_off(),
        SSDP=Ssdp(
            ProtocolEnabled=False,
            Port=None,
            NotifyIPv6Scope=None,
            NotifyMulticastIntervalSeconds=None,
            NotifyTTL=None,
        ),
    )
    return respond(declared.body(f"{ctx.manager_path}/NetworkProtocol"))


async def patch(ctx: BmcContext, request: Request) -> Response:
    """Only ``<protocol>/ProtocolEnabled: false`` is accepted, and changes nothing."""
    mine(request)
    validate_patch(ManagerNetworkProtocol, await read_patch(request))
    return await get(ctx, request)
