"""``Managers/bmc/EthernetInterfaces``: the BMC's own management port (its MAC from the
board's identity; a board that cannot say lists none).

An Administrator (``ConfigureManager``) may PATCH what the OCP baseline profile asks to be
writable: ``HostName``, ``FQDN``, ``IPv4Addresses`` (one static address with its
``SubnetMask`` and ``Gateway``; ``[]`` removes it) and ``NameServers``. The
values are checked (:mod:`racklet.bmc._state.network`; a bad one is
``PropertyValueFormatError`` naming the property), kept 0600 in the BMC's storage, shown at
once, written to the BMC's log with who changed them and published as a
``ResourceChanged`` event. They are what the BMC would apply at its next restart; the twin
applies none (its listener and its certificate stay as they are, see docs/bmc.md). Before an
address is configured, ``IPv4Addresses`` shows the address the request reached (what the
request itself proves), with the mask and gateway the BMC cannot know as null.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import WRITABLE, Declared, Writable, validate_patch
from racklet.bmc._http.etags import check_if_match, tagged
from racklet.bmc._http.odata import collection
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, principal, read_patch, respond
from racklet.bmc._resources.common import NIC, EthernetInterface
from racklet.bmc._resources.managers.common import mine, network_settings
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.network import (
    FQDN_MAX,
    HOST_NAME_MAX,
    NetworkSettings,
    StaticIPv4,
)
from racklet.bmc.errors import StateError


class ManagerEthernetInterface(EthernetInterface):
    """The BMC's port: the interface of :mod:`common`, with its network settings writable."""

    HostName: Annotated[str, Writable(maximum=HOST_NAME_MAX)]
    FQDN: Annotated[str, Writable(maximum=FQDN_MAX)]
    IPv4Addresses: Annotated[list[dict[str, Any]], WRITABLE]
    NameServers: Annotated[list[str], WRITABLE]


class IPv4AddressPatch(Declared):
    """One element of ``IPv4Addresses`` in a PATCH (what is left out keeps its value)."""

    Address: Annotated[str, WRITABLE] | None = None
    SubnetMask: Annotated[str, WRITABLE] | None = None
    Gateway: Annotated[str | None, WRITABLE] = None
    AddressOrigin: Annotated[Literal["Static"], WRITABLE] | None = None


def _path(ctx: BmcContext) -> str:
    return f"{ctx.manager_path}/EthernetInterfaces"


def _observed(request: Request) -> str | None:
    """The address this request reached: the BMC's own, as the request itself proves."""
    server = request.scope.get("server") or (None, None)
    return server[0] if isinstance(server[0], str) and ":" not in server[0] else None


def _body(ctx: BmcContext, request: Request, mac: str) -> dict[str, Any]:
    settings = ctx.network.cached()
    default_name = f"{ctx.unit}-bmc"
    if settings.ipv4 is not None:
        ipv4 = settings.ipv4
        addresses: list[dict[str, Any]] = [
            {
                "Address": ipv4.address,
                "SubnetMask": ipv4.subnet_mask,
                "Gateway": ipv4.gateway,
                "AddressOrigin": "Static",
            }
        ]
    else:
        seen = _observed(request)
        addresses = (
            []
            if seen is None
            else [{"Address": seen, "SubnetMask": None, "Gateway": None, "AddressOrigin": "Static"}]
        )
    return ManagerEthernetInterface(
        Id=NIC,
        Name=f"Management port of the BMC of {ctx.unit}",
        MACAddress=mac,
        PermanentMACAddress=mac,
        InterfaceEnabled=True,
        LinkStatus="LinkUp",
        SpeedMbps=None,
        HostName=settings.host_name or default_name,
        FQDN=settings.fqdn or default_name,
        IPv4Addresses=addresses,
        NameServers=list(settings.name_servers),
        Status={"State": "Enabled", "Health": "OK"},
    ).body(f"{_path(ctx)}/{NIC}")


async def interfaces(ctx: BmcContext, request: Request) -> Response:
    mine(request)
    members = [] if ctx.board.identity is None else [f"{_path(ctx)}/{NIC}"]
    return respond(
        collection(
            "EthernetInterfaceCollection", _path(ctx), "BMC Ethernet", page(request, members)
        )
    )


def _mac(ctx: BmcContext, request: Request) -> str:
    mine(request)
    identity = ctx.board.identity
    if identity is None or request.path_params["item_id"] != NIC:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "EthernetInterface", request.path_params["item_id"]
        )
    return identity.bmc_mac


async def ethernet(ctx: BmcContext, request: Request) -> Response:
    mac = _mac(ctx, request)
    await network_settings(ctx)
    return tagged(request, _body(ctx, request, mac))


def _format_error(value: Any, pointer: str, why: str) -> RedfishErrorReply:
    return RedfishErrorReply(
        400, "PropertyValueFormatError", json.dumps(value), pointer, resolution=f"{why}."
    )


def _ipv4(
    current: NetworkSettings, observed: str | None, items: list[dict[str, Any]]
) -> StaticIPv4 | None:
    """The static address a PATCH of ``IPv4Addresses`` configures (None: none)."""
    if len(items) > 1:
        raise _format_error(items, "IPv4Addresses", "The port holds one IPv4 address")
    if not items:
        return None
    pointer = "IPv4Addresses/0/"
    given = validate_patch(IPv4AddressPatch, items[0], pointer)
    base = current.ipv4 or StaticIPv4(observed or "", "")
    merged = StaticIPv4(
        address=given.get("Address", base.address),
        subnet_mask=given.get("SubnetMask", base.subnet_mask),
        gateway=given.get("Gateway", base.gateway),
    )
    for name, value in (("Address", merged.address), ("SubnetMask", merged.subnet_mask)):
        if not value:
            raise RedfishErrorReply(400, "PropertyMissing", f"{pointer}{name}")
    return merged


async def patch(ctx: BmcContext, request: Request) -> Response:
    mac = _mac(ctx, request)
    body = await read_patch(request)
    # One change at a time: a PATCH merges into the settings another may be writing.
    async with ctx.network.lock:
        current = await network_settings(ctx)
        check_if_match(request, _body(ctx, request, mac))
        changes = validate_patch(ManagerEthernetInterface, body)
        wanted = dataclasses.replace(
            current,
            host_name=changes.get("HostName", current.host_name),
            fqdn=changes.get("FQDN", current.fqdn),
            name_servers=tuple(changes.get("NameServers", current.name_servers)),
        )
        if "IPv4Addresses" in changes:
            ipv4 = _ipv4(current, _observed(request), changes["IPv4Addresses"])
            wanted = dataclasses.replace(wanted, ipv4=ipv4)
        problem = wanted.problem()
        if problem is not None:
            pointer, value, why = problem
            raise _format_error(value, pointer, f"The value is {why}")
        try:
            await ctx.network.set(wanted)
        except StateError as exc:
            ctx.log.error(str(exc))
            raise RedfishErrorReply(500, "InternalError") from exc
    who = principal(request).username
    what = ", ".join(f"{key}={json.dumps(value)}" for key, value in changes.items())
    ctx.log.info(f"{who} changed the management port's network settings: {what}")
    ctx.events.changed(f"{_path(ctx)}/{NIC}")
    return tagged(request, _body(ctx, request, mac))
