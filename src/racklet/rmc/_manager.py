"""The RMC's own manager (``Managers/rmc``): what it is, where it listens, its certificate.

OCP's rack-manager profile asks of a rack manager what it asks of a BMC: its firmware
version and clock, its network protocols (``NetworkProtocol``: the one HTTPS listener, nothing
else), its Ethernet interface, the certificate it serves and a ``Manager.Reset``. The
certificate collection (``NetworkProtocol/HTTPS/Certificates``) is the CertificateService's,
the BMC's code (:mod:`racklet.bmc.certificates`), served beside. The reset restarts the
RMC's own loops (the fan zones' control, the busbar meter, the units' poll), as a restart of
the RMC's firmware would, without stopping its listener or the BMCs behind it; the fans keep
the duty they had for the instant between.

The EventLog (logins, lockouts) is :func:`racklet.bmc.login.event_log_routes`, served beside.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.limits import InputRejected, parse_json
from racklet.rmc import _uris
from racklet.rmc._messages import error, json_response

MANAGER_ID = "rmc"
MANAGER = f"{_uris.ROOT}/Managers/{MANAGER_ID}"
NETWORK = f"{MANAGER}/NetworkProtocol"
CERTIFICATES = f"{NETWORK}/HTTPS/Certificates"
ETHERNET = f"{MANAGER}/EthernetInterfaces"
INTERFACE_ID = "eth0"
RESET = f"{MANAGER}/Actions/Manager.Reset"
RESET_TYPES = ("GracefulRestart", "ForceRestart", "PowerCycle")


def _link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def now_iso() -> str:
    """The manager's clock as Redfish ``DateTime`` (UTC, with its offset)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def mac_for(name: str) -> str:
    """A stable, locally administered MAC for a rack without one on record (the twin)."""
    digest = bytearray(hashlib.sha256(f"racklet-rmc:{name}".encode()).digest()[:6])
    digest[0] = (digest[0] | 0x02) & 0xFE  # locally administered, unicast
    return ":".join(f"{b:02x}" for b in digest)


@dataclass
class ManagerInfo:
    """What the RMC's manager reports about itself."""

    name: str
    uuid: str
    firmware_version: str
    host: str
    """The address its listener is bound to."""
    https_port: int | None
    mac_address: str
    rack_chassis: str | None
    """``Chassis/rack`` when the RMC has the rack's board."""
    link_speed_mbps: int | None = None
    """The management port's link speed, when known."""
    certificates: bool = True
    """Whether its listener's certificate is served (the CertificateService's collection)."""


class ManagerResources:
    def __init__(self, info: ManagerInfo, restart: Callable[[], Awaitable[None]]) -> None:
        self.info = info
        self._restart = restart
        self._lock = asyncio.Lock()

    def manager(self) -> dict[str, Any]:
        i = self.info
        links: dict[str, Any] = {}
        if i.rack_chassis is not None:
            links = {
                "ManagerForChassis": [_link(i.rack_chassis)],
                "ManagerInChassis": _link(i.rack_chassis),
            }
        return {
            "@odata.type": "#Manager.v1_19_0.Manager",
            "@odata.id": MANAGER,
            "Id": MANAGER_ID,
            "Name": "Racklet RMC",
            "Description": f"Rack management controller of {i.name}",
            "ManagerType": "RackManager",
            "Model": "Racklet RMC",
            "UUID": i.uuid,
            "ServiceEntryPointUUID": i.uuid,
            "FirmwareVersion": i.firmware_version,
            "DateTime": now_iso(),
            "DateTimeLocalOffset": "+00:00",
            "PowerState": "On",
            "Status": {"State": "Enabled", "Health": "OK", "HealthRollup": "OK"},
            "NetworkProtocol": _link(NETWORK),
            "EthernetInterfaces": _link(ETHERNET),
            **({"Certificates": _link(CERTIFICATES)} if i.certificates else {}),
            "LogServices": _link(f"{MANAGER}/LogServices"),
            "Links": links,
            "Actions": {
                "#Manager.Reset": {
                    "target": RESET,
                    "ResetType@Redfish.AllowableValues": list(RESET_TYPES),
                }
            },
        }

    def network_protocol(self) -> dict[str, Any]:
        i = self.info
        return {
            "@odata.type": "#ManagerNetworkProtocol.v1_10_0.ManagerNetworkProtocol",
            "@odata.id": NETWORK,
            "Id": "NetworkProtocol",
            "Name": "RMC network protocols",
            "HostName": i.name,
            "FQDN": i.host if not _is_ip(i.host) else i.name,
            "Status": {"State": "Enabled", "Health": "OK"},
            "HTTP": {"ProtocolEnabled": False, "Port": None},
            "HTTPS": {
                "ProtocolEnabled": True,
                "Port": i.https_port,
                **({"Certificates": _link(CERTIFICATES)} if i.certificates else {}),
            },
            "SSH": {"ProtocolEnabled": False, "Port": None},
            "SSDP": {"ProtocolEnabled": False, "Port": None},
            "NTP": {"ProtocolEnabled": False, "Port": None, "NTPServers": []},
            "IPMI": {"ProtocolEnabled": False, "Port": None},
        }

    def interface(self) -> dict[str, Any]:
        i = self.info
        addresses: dict[str, Any] = {"IPv4Addresses": [], "IPv6Addresses": []}
        if _is_ip(i.host):
            address = ipaddress.ip_address(i.host)
            if address.version == 4:
                addresses["IPv4Addresses"] = [
                    {
                        "Address": i.host,
                        "SubnetMask": "255.0.0.0" if address.is_loopback else "255.255.255.0",
                        "AddressOrigin": "Static",
                        "Gateway": "0.0.0.0",
                    }
                ]
            else:
                addresses["IPv6Addresses"] = [
                    {
                        "Address": i.host,
                        "PrefixLength": 128 if address.is_loopback else 64,
                        "AddressOrigin": "Static",
                        "AddressState": "Preferred",
                    }
                ]
        return {
            "@odata.type": "#EthernetInterface.v1_12_0.EthernetInterface",
            "@odata.id": f"{ETHERNET}/{INTERFACE_ID}",
            "Id": INTERFACE_ID,
            "Name": "RMC management interface",
            "MACAddress": i.mac_address,
            "PermanentMACAddress": i.mac_address,
            "InterfaceEnabled": True,
            "LinkStatus": "LinkUp",
            "SpeedMbps": i.link_speed_mbps,
            "FQDN": i.host if not _is_ip(i.host) else i.name,
            "NameServers": [],
            "Status": {"State": "Enabled", "Health": "OK"},
            "HostName": i.name,
            **addresses,
        }

    # -- handlers ----------------------------------------------------------------------------

    async def get_manager(self, request: Request) -> Response:
        return json_response(self.manager())

    async def get_network(self, request: Request) -> Response:
        return json_response(self.network_protocol())

    async def get_interfaces(self, request: Request) -> Response:
        return json_response(_collection("EthernetInterfaceCollection", ETHERNET, [INTERFACE_ID]))

    async def get_interface(self, request: Request) -> Response:
        if request.path_params["interface"] != INTERFACE_ID:
            return error(
                404, "ResourceNotFound", "EthernetInterface", request.path_params["interface"]
            )
        return json_response(self.interface())

    async def reset(self, request: Request) -> Response:
        try:
            body = parse_json(await request.body() or b"{}")
        except InputRejected:
            return error(400, "MalformedJSON")
        if not isinstance(body, dict):
            return error(400, "MalformedJSON")
        unknown = sorted(set(body) - {"ResetType"})
        if unknown:
            return error(400, "ActionParameterUnknown", "Manager.Reset", unknown[0])
        reset_type = body.get("ResetType", "GracefulRestart")
        if reset_type not in RESET_TYPES:
            return error(
                400, "ActionParameterValueNotInList", str(reset_type), "ResetType", "Manager.Reset"
            )
        async with self._lock:
            await self._restart()
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    def routes(self) -> list[Route]:
        return [
            Route(MANAGER, self.get_manager, methods=["GET"]),
            Route(RESET, self.reset, methods=["POST"]),
            Route(NETWORK, self.get_network, methods=["GET"]),
            Route(ETHERNET, self.get_interfaces, methods=["GET"]),
            Route(ETHERNET + "/{interface}", self.get_interface, methods=["GET"]),
        ]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _collection(odata_type: str, path: str, ids: list[str]) -> dict[str, Any]:
    members = [_link(f"{path}/{member}") for member in ids]
    return {
        "@odata.type": f"#{odata_type}.{odata_type}",
        "@odata.id": path,
        "Name": odata_type,
        "Members": members,
        "Members@odata.count": len(members),
    }
