"""The BMC's own network identity and the tray's asset tag through DMTF's ``redfish``
library: NetworkProtocol's FQDN and port objects (a protocol may be kept off, not turned
on), the management port under Managers, and an AssetTag written, checked and stored 0600."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import redfish
from tests.bmc.twin_bench import ADMIN, OPERATOR, UNIT, TwinBmc, running_twin_bmc

PROTOCOL = "/redfish/v1/Managers/bmc/NetworkProtocol"
CHASSIS = f"/redfish/v1/Chassis/{UNIT}"


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
    assert seen["nic"]["IPv4Addresses"] == [{"Address": "127.0.0.1", "AddressOrigin": "Static"}]


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
