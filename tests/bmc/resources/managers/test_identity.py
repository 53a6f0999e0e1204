"""The BMC's own network identity and the tray's asset tag through DMTF's ``redfish``
library: NetworkProtocol's FQDN and port objects (a protocol may be kept off, not turned
on), the management port under Managers with its network settings written, checked,
stored 0600 and recorded, and an AssetTag written, checked and stored 0600."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import redfish
from racklet.bmc._state.network import NetworkConfig, NetworkSettings, StaticIPv4
from tests.bmc.conftest import eventually
from tests.bmc.twin_bench import ADMIN, OPERATOR, UNIT, TwinBmc, running_twin_bmc

PROTOCOL = "/redfish/v1/Managers/bmc/NetworkProtocol"
CHASSIS = f"/redfish/v1/Chassis/{UNIT}"
NIC = "/redfish/v1/Managers/bmc/EthernetInterfaces/eth0"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


def _session(twin: TwinBmc, who: tuple[str, str] = OPERATOR) -> Any:
    client = redfish.redfish_client(
        base_url=twin.url, username=who[0], password=who[1], cafile=str(twin.ca)
    )
    client.login(auth="session")
    return client


async def test_network_protocol_and_the_management_port(twin: TwinBmc) -> None:
    def talk() -> dict[str, Any]:
        client = _session(twin, ADMIN)  # the manager's settings need ConfigureManager
        try:
            protocol = client.get(PROTOCOL).dict
            keep_off = client.patch(PROTOCOL, body={"SSDP": {"ProtocolEnabled": False}})
            turn_on = client.patch(PROTOCOL, body={"SSH": {"ProtocolEnabled": True}})
            port = client.patch(PROTOCOL, body={"HTTPS": {"Port": 8443}})
            nics = client.get("/redfish/v1/Managers/bmc/EthernetInterfaces").dict
            nic = client.get(nics["Members"][0]["@odata.id"]).dict
            return {
                "protocol": protocol,
                "statuses": (keep_off.status, turn_on.status, port.status),
                "turn_on": turn_on.dict["error"]["@Message.ExtendedInfo"][0]["MessageId"],
                "nic": nic,
            }
        finally:
            client.logout()

    seen = await asyncio.to_thread(talk)
    protocol = seen["protocol"]
    assert protocol["FQDN"] == f"{UNIT}-bmc"
    assert protocol["HTTPS"]["ProtocolEnabled"] and protocol["HTTPS"]["Port"] > 0
    for off in ("HTTP", "SSH", "IPMI", "SSDP"):
        assert protocol[off]["ProtocolEnabled"] is False and protocol[off]["Port"] is None
    assert seen["statuses"] == (200, 400, 400)
    assert seen["turn_on"].endswith("PropertyValueNotInList")
    identity = twin.rack.board(UNIT).identity
    assert identity is not None
    assert seen["nic"]["MACAddress"] == identity.bmc_mac
    # Before an address is configured: the one the request reached; mask and gateway unknown.
    assert seen["nic"]["IPv4Addresses"] == [
        {"Address": "127.0.0.1", "SubnetMask": None, "Gateway": None, "AddressOrigin": "Static"}
    ]


async def test_the_asset_tag_is_written_checked_and_kept(twin: TwinBmc) -> None:
    def talk() -> tuple[int, int, str]:
        client = _session(twin)
        try:
            ok = client.patch(CHASSIS, body={"AssetTag": "rack-7 slot 1"})
            too_long = client.patch(CHASSIS, body={"AssetTag": "x" * 65})
            return ok.status, too_long.status, client.get(CHASSIS).dict["AssetTag"]
        finally:
            client.logout()

    ok, too_long, tag = await asyncio.to_thread(talk)
    assert (ok, too_long, tag) == (200, 400, "rack-7 slot 1")
    stored = twin.state_dir / "asset-tag.txt"
    assert stored.read_text().strip() == "rack-7 slot 1"
    assert stored.stat().st_mode & 0o777 == 0o600


async def test_the_locate_led_is_written_as_a_boolean_only(twin: TwinBmc) -> None:
    def talk() -> tuple[int, int, int, bool]:
        client = _session(twin)
        try:
            lit = client.patch(CHASSIS, body={"LocationIndicatorActive": True})
            null = client.patch(CHASSIS, body={"LocationIndicatorActive": None})
            number = client.patch(CHASSIS, body={"LocationIndicatorActive": 1})
            shown = client.get(CHASSIS).dict["LocationIndicatorActive"]
            return lit.status, null.status, number.status, shown
        finally:
            client.logout()

    led = twin.rack.board(UNIT).locate_led
    assert led is not None and not led.is_lit()
    assert await asyncio.to_thread(talk) == (200, 400, 400, True)
    assert led.is_lit()


_BAD_SETTINGS: list[tuple[dict[str, Any], str, str]] = [
    ({"HostName": "x" * 64}, "PropertyValueFormatError", "HostName"),
    ({"HostName": "not_a_label"}, "PropertyValueFormatError", "HostName"),
    ({"FQDN": "bmc..example"}, "PropertyValueFormatError", "FQDN"),
    ({"NameServers": ["192.0.2.53", "dns.example"]}, "PropertyValueFormatError", "NameServers/1"),
    (
        {"NameServers": [f"192.0.2.{i}" for i in range(4)]},
        "PropertyValueFormatError",
        "NameServers",
    ),
    (
        {"IPv4Addresses": [{"Address": "192.0.2.300", "SubnetMask": "255.255.255.0"}]},
        "PropertyValueFormatError",
        "IPv4Addresses/0/Address",
    ),
    (
        {"IPv4Addresses": [{"Address": "192.0.2.11", "SubnetMask": "255.0.255.0"}]},
        "PropertyValueFormatError",
        "IPv4Addresses/0/SubnetMask",
    ),
    (
        {
            "IPv4Addresses": [
                {"Address": "192.0.2.11", "SubnetMask": "255.255.255.0", "Gateway": "198.51.100.1"}
            ]
        },
        "PropertyValueFormatError",
        "IPv4Addresses/0/Gateway",
    ),
    (
        {"IPv4Addresses": [{"Address": "192.0.2.11"}]},
        "PropertyMissing",
        "IPv4Addresses/0/SubnetMask",
    ),
    ({"IPv4Addresses": [{"Prefix": 24}]}, "PropertyUnknown", "IPv4Addresses/0/Prefix"),
    (
        {"IPv4Addresses": [{"AddressOrigin": "DHCP"}]},
        "PropertyValueNotInList",
        "IPv4Addresses/0/AddressOrigin",
    ),
    ({"MACAddress": "02:00:00:00:00:01"}, "PropertyNotWritable", "MACAddress"),
]


async def test_the_management_ports_network_settings_are_written_checked_and_kept(
    twin: TwinBmc,
) -> None:
    wanted = {
        "HostName": "r7-bmc1",
        "FQDN": "r7-bmc1.lab.example",
        "IPv4Addresses": [
            {"Address": "192.0.2.11", "SubnetMask": "255.255.255.0", "Gateway": "192.0.2.1"}
        ],
        "NameServers": ["192.0.2.53", "2001:db8::53"],
    }

    def talk() -> dict[str, Any]:
        admin, operator = _session(twin, ADMIN), _session(twin)
        try:
            before = client_get(admin, NIC)
            refused = {
                json.dumps(body): admin.patch(NIC, body=body).dict["error"][
                    "@Message.ExtendedInfo"
                ][0]
                for body, _, _ in _BAD_SETTINGS
            }
            unchanged = client_get(admin, NIC)
            by_operator = operator.patch(NIC, body={"HostName": "mine"}).status
            written = admin.patch(NIC, body=wanted)
            # A later PATCH of one member keeps the rest of the address.
            gateway = admin.patch(NIC, body={"IPv4Addresses": [{"Gateway": "192.0.2.254"}]})
            return {
                "before": before,
                "refused": refused,
                "unchanged": unchanged,
                "by_operator": by_operator,
                "written": (written.status, written.dict),
                "gateway": (gateway.status, gateway.dict),
                "protocol": client_get(admin, PROTOCOL),
                "log": client_get(admin, "/redfish/v1/Managers/bmc/LogServices/EventLog/Entries"),
            }
        finally:
            admin.logout()
            operator.logout()

    seen = await asyncio.to_thread(talk)
    for body, code, pointer in _BAD_SETTINGS:
        info = seen["refused"][json.dumps(body)]
        assert info["MessageId"].endswith(code), (body, info)
        assert pointer in info["MessageArgs"], (body, info)
    assert seen["unchanged"] == seen["before"], "a refused PATCH changes nothing"
    assert seen["by_operator"] == 403, "the BMC's network settings need ConfigureManager"

    status, nic = seen["written"]
    assert status == 200, nic
    assert (nic["HostName"], nic["FQDN"]) == ("r7-bmc1", "r7-bmc1.lab.example")
    assert nic["NameServers"] == ["192.0.2.53", "2001:db8::53"]
    assert nic["IPv4Addresses"] == [
        {
            "Address": "192.0.2.11",
            "SubnetMask": "255.255.255.0",
            "Gateway": "192.0.2.1",
            "AddressOrigin": "Static",
        }
    ]
    status, nic = seen["gateway"]
    assert status == 200 and nic["IPv4Addresses"][0]["Gateway"] == "192.0.2.254"
    assert nic["IPv4Addresses"][0]["Address"] == "192.0.2.11"
    assert (seen["protocol"]["HostName"], seen["protocol"]["FQDN"]) == (
        "r7-bmc1",
        "r7-bmc1.lab.example",
    )
    changed = [
        e for e in seen["log"]["Members"] if e["Links"]["OriginOfCondition"] == {"@odata.id": NIC}
    ]
    assert [e["MessageId"] for e in changed] == ["ResourceEvent.1.4.ResourceChanged"] * 2

    # Kept 0600 in the BMC's storage, and read back as written (a BMC restart reads this).
    stored = twin.state_dir / "network.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert await NetworkConfig(stored).get() == NetworkSettings(
        host_name="r7-bmc1",
        fqdn="r7-bmc1.lab.example",
        ipv4=StaticIPv4("192.0.2.11", "255.255.255.0", "192.0.2.254"),
        name_servers=("192.0.2.53", "2001:db8::53"),
    )
    # Audited: who changed what, in the BMC's audit log.
    audit = twin.state_dir / "audit.log"

    def patches() -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else []
        return [x for x in lines if x["verb"] == "PATCH" and x["object"] == NIC]

    await eventually(lambda: len(patches()) == len(_BAD_SETTINGS) + 3, "the audit lines")
    succeeded = [x for x in patches() if x["outcome"] == "succeeded"]
    assert [x["principal"] for x in succeeded] == [ADMIN[0], ADMIN[0]]


def client_get(client: Any, path: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(path).dict
    body.pop("@odata.etag", None)
    return body


async def test_the_managers_certificates_are_its_https_identity(twin: TwinBmc) -> None:
    """``Manager.Certificates`` (asked of each unit's BMC by OCP's rack-manager profile)
    leads to the certificate the BMC presents: its identity, ``bmc/<unit>``."""

    def read() -> tuple[str, dict[str, Any]]:
        client = _session(twin)
        try:
            manager = client.get("/redfish/v1/Managers/bmc").dict
            collection = manager["Certificates"]["@odata.id"]
            members = client.get(collection).dict["Members"]
            return collection, client.get(members[0]["@odata.id"]).dict
        finally:
            client.logout()

    collection, certificate = await asyncio.to_thread(read)
    assert collection == f"{PROTOCOL}/HTTPS/Certificates"
    assert certificate["Subject"]["CommonName"] == f"{UNIT}-bmc"
    assert certificate["CertificateType"] == "PEM"
    assert "BEGIN CERTIFICATE" in certificate["CertificateString"]
