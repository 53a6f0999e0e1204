"""The control endpoint over real mutual TLS: only the controller's identity is served, and
every refusal is a Status body the management side's client turns into a clear error."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from racklet.controller._hardware import HardwareControl, HardwareRefused, HardwareUnreachable
from racklet.net import client_context

from .conftest import Endpoint, free_port


async def test_only_the_controller_identity_may_break_the_rack(endpoint: Endpoint) -> None:
    pki = endpoint.pki
    bmc = client_context(pki / "ca.crt", pki / "bmc.crt", pki / "bmc.key")
    async with httpx.AsyncClient(verify=bmc) as other:
        response = await other.post(f"{endpoint.url}/control/v1/slots/1/pull")
    assert response.status_code == 403
    assert response.json()["kind"] == "Status"
    assert endpoint.rack.unit("unit-1").present
    async with httpx.AsyncClient(verify=client_context(pki / "ca.crt")) as anonymous:
        with pytest.raises(httpx.HTTPError):  # no client certificate: no TLS session at all
            await anonymous.get(f"{endpoint.url}/control/v1/faults")


async def test_faults_and_slots_round_trip_with_clear_refusals(endpoint: Endpoint) -> None:
    client, rack = endpoint.client, endpoint.rack
    assert (await client.capabilities())["Partition"] == ""
    applied = await client.inject("cut", "PowerLoss", {}, ["unit-2"])
    assert applied["targets"] == ["unit-2"] and not rack.unit("unit-2").powered
    assert [f["id"] for f in await client.faults()] == ["cut"]
    with pytest.raises(HardwareRefused, match="no unit 'unit-7'") as missing:
        await client.inject("x", "PowerLoss", {}, ["unit-7"])
    assert missing.value.code == 404
    with pytest.raises(HardwareRefused, match="already has PowerLoss fault 'cut'") as overlap:
        await client.inject("y", "SlotPull", {}, ["unit-2"])
    assert overlap.value.code == 409
    with pytest.raises(HardwareRefused, match="below one unit's idle draw") as low:
        await client.inject("z", "BrownOut", {"watts": 0.5}, [])
    assert low.value.code == 422
    assert await client.clear("cut") and not await client.clear("cut")

    assert (await client.pull(3))["present"] is False
    with pytest.raises(HardwareRefused, match="slot 3 is already empty"):
        await client.pull(3)
    with pytest.raises(HardwareRefused, match="slot 1 is occupied by unit-1"):
        await client.insert(1)
    with pytest.raises(HardwareRefused, match="one profile per rack"):
        await client.insert(3, profile="raspberry-pi-5")
    with pytest.raises(HardwareRefused, match="no slot 9") as nine:
        await client.insert(9)
    assert nine.value.code == 404
    assert (await client.insert(3))["present"] is True
    assert [s["present"] for s in await client.slots()] == [True, True, True]


async def test_a_bad_body_is_a_status_not_a_crash(endpoint: Endpoint) -> None:
    pki = endpoint.pki
    verify = client_context(pki / "ca.crt", pki / "controller.crt", pki / "controller.key")
    async with httpx.AsyncClient(verify=verify, base_url=endpoint.url) as raw:
        for body in (b"[1]", b"{not json", b'{"kind": 3}', b'{"kind": "PowerLoss", "targets": 1}'):
            response = await raw.put("/control/v1/faults/f", content=body)
            assert 400 <= response.status_code < 500, body
            assert response.json()["kind"] == "Status"
        response = await raw.put("/control/v1/faults/f", content=b"{" + b" " * 70_000 + b"}")
        assert response.status_code == 400


async def test_an_unanswering_endpoint_is_a_clear_error(tmp_path: Path, endpoint: Endpoint) -> None:
    pki = endpoint.pki
    client = HardwareControl(
        f"https://127.0.0.1:{free_port()}",
        pki / "ca.crt",
        pki / "controller.crt",
        pki / "controller.key",
    )
    try:
        with pytest.raises(HardwareUnreachable, match="does not answer"):
            await client.faults()
    finally:
        await client.aclose()
