"""The backplane link: trust and identity out, boot progress and failures in (and shown in
Redfish), over a socket pair as on the twin."""

from __future__ import annotations

import json

import pytest

from racklet.link import LinkError
from tests.bmc.conftest import UNIT, Bench

SYSTEM = f"/redfish/v1/Systems/{UNIT}"
RESET = f"{SYSTEM}/Actions/ComputerSystem.Reset"


async def test_trust_and_identity_come_from_the_state_dir(bench: Bench) -> None:
    client = await bench.link.connect()
    try:
        trust = await client.request("trust")
        identity = await client.request("identity")
    finally:
        await client.close()
    expected = json.loads((bench.state_dir / "trust.json").read_text())
    assert {k: trust[k] for k in ("bootServer", "tufRoot", "channel", "caBundle")} == expected
    assert identity["name"] == UNIT
    assert identity["key"] == (bench.state_dir / "identity.key").read_text()
    assert identity["cert"] == (bench.state_dir / "identity.crt").read_text()


async def test_a_missing_trust_bundle_is_refused_not_crashed(bench: Bench) -> None:
    (bench.state_dir / "trust.json").unlink()
    client = await bench.link.connect()
    try:
        with pytest.raises(LinkError, match="trust"):
            await client.request("trust")
        assert (await client.request("identity"))["name"] == UNIT  # the link survives
    finally:
        await client.close()


async def test_progress_shows_as_boot_progress(bench: Bench) -> None:
    client = await bench.link.connect()
    try:
        await client.request("progress", state="OSBootStarted", message="payload verified")
        async with bench.client() as http:
            boot = (await http.get(SYSTEM)).json()["BootProgress"]
        assert boot["LastState"] == "OSBootStarted"
        assert "OemLastState" not in boot
        with pytest.raises(LinkError, match="Sideways"):
            await client.request("progress", state="Sideways")
        with pytest.raises(LinkError, match="unknown op"):
            await client.request("format-disk")
    finally:
        await client.close()


async def test_failure_is_critical_until_the_next_power_on(bench: Bench) -> None:
    async with bench.client() as http:
        await http.post(RESET, json={"ResetType": "On"})
        client = await bench.link.connect()
        try:
            await client.request("failed", reason="payload sha-256 mismatch")
        finally:
            await client.close()
        system = (await http.get(SYSTEM)).json()
        assert system["BootProgress"]["LastState"] == "OEM"
        assert system["BootProgress"]["OemLastState"] == "BootFailed"
        assert system["Status"]["Health"] == "Critical"
        (condition,) = system["Status"]["Conditions"]
        assert "sha-256 mismatch" in condition["Message"]
        assert condition["MessageId"] and condition["Severity"] == "Critical"

        await http.post(RESET, json={"ResetType": "ForceOff"})
        still = (await http.get(SYSTEM)).json()
        assert still["Status"]["Health"] == "Critical"  # kept while off
        await http.post(RESET, json={"ResetType": "On"})
        cleared = (await http.get(SYSTEM)).json()
    assert cleared["Status"]["Health"] == "OK"
    assert "Conditions" not in cleared["Status"]
    assert cleared["BootProgress"]["LastState"] == "None"
