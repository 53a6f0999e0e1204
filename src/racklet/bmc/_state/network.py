"""The network settings of the BMC's management port (``Managers/bmc/EthernetInterfaces/eth0``):
host name, FQDN, a static IPv4 address and the name servers an operator configured.

They are kept like the asset tag (``network.json``, 0600, through :class:`StoredFile`) and
checked here, without I/O, before they are kept: a host name is one RFC 1123 label, an FQDN
at most 253 characters of such labels, an address a unicast IPv4 host address of its
subnet, the gateway (if any) another host of that subnet, at most three name servers (what
a resolver reads). What they change is deliberately little: the BMC shows them, but it
neither re-binds its listener nor asks the rack CA for other names (the CA decides the
names it certifies). A BMC on real hardware applies such settings to its interface at its
next start; nothing here applies them yet (the twin's listener stays where ``racklet up``
put it, and the HAL has no network hook): they are what a host would read (docs/bmc.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

from racklet.bmc._state.stored import StoredFile
from racklet.bmc.errors import StateError

HOST_NAME_MAX = 63
FQDN_MAX = 253
NAME_SERVERS_MAX = 3
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class StaticIPv4:
    address: str
    subnet_mask: str
    gateway: str | None = None


@dataclass(frozen=True)
class NetworkSettings:
    """What an operator configured; ``None`` (or no name servers): not configured."""

    host_name: str | None = None
    fqdn: str | None = None
    ipv4: StaticIPv4 | None = None
    name_servers: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> NetworkSettings:
        """Settings read back from storage, checked again (a bad file is a StateError)."""
        try:
            raw = json.loads(text)
            ipv4 = raw.get("ipv4")
            settings = cls(
                host_name=raw.get("host_name"),
                fqdn=raw.get("fqdn"),
                ipv4=None if ipv4 is None else StaticIPv4(**ipv4),
                name_servers=tuple(raw.get("name_servers") or ()),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise StateError(f"the stored network settings are not valid: {exc}") from exc
        problem = settings.problem()
        if problem is not None:
            raise StateError(f"the stored network settings are not valid: {problem[0]}")
        return settings

    def problem(self) -> tuple[str, object, str] | None:
        """The first setting that is not valid: its Redfish property path, its value, why."""
        if self.host_name is not None and not valid_host_name(self.host_name):
            return "HostName", self.host_name, "not one DNS label"
        if self.fqdn is not None and not valid_fqdn(self.fqdn):
            return "FQDN", self.fqdn, "not a DNS name"
        for index, server in enumerate(self.name_servers):
            if not valid_ip(server):
                return f"NameServers/{index}", server, "not an IP address"
        if len(self.name_servers) > NAME_SERVERS_MAX:
            return "NameServers", list(self.name_servers), f"more than {NAME_SERVERS_MAX}"
        if self.ipv4 is not None:
            found = ipv4_problem(self.ipv4)
            if found is not None:
                name, why = found
                return f"IPv4Addresses/0/{name}", getattr(self.ipv4, _FIELDS[name]), why
        return None


_FIELDS = {"Address": "address", "SubnetMask": "subnet_mask", "Gateway": "gateway"}


def valid_host_name(value: str) -> bool:
    return len(value) <= HOST_NAME_MAX and _LABEL.fullmatch(value) is not None


def valid_fqdn(value: str) -> bool:
    name = value.removesuffix(".")
    return 0 < len(name) <= FQDN_MAX and all(_LABEL.fullmatch(part) for part in name.split("."))


def valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _ipv4(value: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        return None


def ipv4_problem(config: StaticIPv4) -> tuple[str, str] | None:
    """Why a static IPv4 configuration cannot be a host's (property path, reason), or None."""
    address = _ipv4(config.address)
    if address is None:
        return "Address", "not an IPv4 address"
    try:
        network = ipaddress.IPv4Network(f"0.0.0.0/{config.subnet_mask}")
    except ValueError:
        return "SubnetMask", "not a subnet mask"
    if str(network.netmask) != config.subnet_mask:
        return "SubnetMask", "not a subnet mask"
    subnet = ipaddress.IPv4Network(f"{address}/{config.subnet_mask}", strict=False)
    if (
        address.is_multicast
        or address.is_unspecified
        or address.is_loopback
        or (subnet.prefixlen < 31 and address in (subnet.network_address, subnet.broadcast_address))
    ):
        return "Address", "not a host address of its subnet"
    if config.gateway is not None:
        gateway = _ipv4(config.gateway)
        if gateway is None:
            return "Gateway", "not an IPv4 address"
        if gateway not in subnet or gateway == address:
            return "Gateway", "not another host of the address's subnet"
    return None


class NetworkConfig:
    """The settings, read once on first use, then served from memory; written through."""

    def __init__(self, path: Path | None) -> None:
        self._file = StoredFile(path, "the network settings")
        self._value: NetworkSettings | None = None
        self.lock = asyncio.Lock()
        """Held by a change from reading the settings to writing them (a PATCH merges)."""

    async def get(self) -> NetworkSettings:
        if self._value is None:
            text = await self._file.read()
            self._value = NetworkSettings() if text is None else NetworkSettings.from_json(text)
        return self._value

    def cached(self) -> NetworkSettings:
        return self._value or NetworkSettings()

    async def set(self, settings: NetworkSettings) -> None:
        await self._file.write(settings.to_json())
        self._value = settings
