"""Declarations more than one family serves (an Ethernet interface is both the unit's, under
Systems, and the BMC's, under Managers). Imports no family."""

from __future__ import annotations

from typing import Any

from racklet.bmc._http.declared import Resource

NIC = "eth0"


class EthernetInterface(Resource):
    redfish_type = "EthernetInterface"

    Id: str = NIC
    Name: str
    MACAddress: str
    PermanentMACAddress: str
    InterfaceEnabled: bool = True
    LinkStatus: str
    SpeedMbps: int | None
    HostName: str
    FQDN: str
    IPv4Addresses: list[dict[str, Any]]
    NameServers: list[str]
    Status: dict[str, str]


def interface(
    path: str, name: str, mac: str, host: str, up: bool, addresses: list[str]
) -> dict[str, Any]:
    """The one interface ``eth0`` in the collection at ``path``. What the BMC cannot know
    (the link speed, the name servers a unit uses) is null or empty, never made up."""
    return EthernetInterface(
        Id=NIC,
        Name=name,
        MACAddress=mac,
        PermanentMACAddress=mac,
        InterfaceEnabled=True,
        LinkStatus="LinkUp" if up else "NoLink",
        SpeedMbps=None,
        HostName=host,
        FQDN=host,
        IPv4Addresses=[{"Address": a, "AddressOrigin": "Static"} for a in addresses],
        NameServers=[],
        # The interface is there and healthy whether or not its link is up (Ironic reads the
        # MACs of powered-off units from exactly this).
        Status={"State": "Enabled", "Health": "OK"},
    ).body(f"{path}/{NIC}")
