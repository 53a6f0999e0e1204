"""Fans on a twin board: Redfish's ThermalSubsystem lists them, the BMC's policy drives them
from the temperature, a stalled rotor raises a sensor event, /metrics reports their speed,
and DMTF's ``redfish`` library reads them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import redfish
from racklet.bmc._state.fans import FanCurve
from racklet.metrics import OPENMETRICS
from racklet.net import client_context
from tests.bmc.conftest import eventually
from tests.bmc.twin_bench import ADMIN, READER, UNIT, TwinBmc, running_twin_bmc

FANS = f"/redfish/v1/Chassis/{UNIT}/ThermalSubsystem/Fans"
EVENT_LOG = "/redfish/v1/Managers/bmc/LogServices/EventLog/Entries"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


def _client(twin: TwinBmc, who: tuple[str, str] = ADMIN) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=twin.url, verify=client_context(twin.ca), auth=who)


def test_the_curve_is_a_proportional_band_that_fails_safe() -> None:
    curve = FanCurve()
    assert curve.duty(25.0) == 30.0
    assert curve.duty(50.0) == 30.0
    assert curve.duty(62.5) == pytest.approx(65.0)
    assert curve.duty(75.0) == 100.0
    assert curve.duty(95.0) == 100.0
    assert curve.duty(None) == 100.0, "an unreadable sensor runs the fans flat out"
    with pytest.raises(ValueError):
        FanCurve(low_celsius=80.0, high_celsius=70.0)


async def test_the_fans_collection_lists_the_board_fan_with_its_tachometer(twin: TwinBmc) -> None:
    fan = twin.rack.board(UNIT).fans[0]
    await eventually(lambda: fan.rpm() > 2000, "the policy to spin the fan up")
    async with _client(twin, READER) as http:
        thermal = (await http.get(f"/redfish/v1/Chassis/{UNIT}/ThermalSubsystem")).json()
        assert thermal["Fans"] == {"@odata.id": FANS}
        fans = (await http.get(FANS)).json()
        assert fans["Members@odata.count"] == 1
        assert fans["Members"] == [{"@odata.id": f"{FANS}/fan-1"}]
        body = (await http.get(f"{FANS}/fan-1")).json()
        missing = await http.get(f"{FANS}/fan-9")
    assert body["@odata.type"].startswith("#Fan.v1_")
    assert body["RatedSpeedRPM"] == 8000
    rpm = body["SpeedPercent"]["SpeedRPM"]
    assert 2000 < rpm <= 8000
    assert body["SpeedPercent"]["Reading"] == pytest.approx(100 * rpm / 8000, abs=0.1)
    assert body["Status"] == {"State": "Enabled", "Health": "OK"}
    assert missing.status_code == 404
    assert missing.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(
        "ResourceNotFound"
    )


async def test_the_policy_speeds_the_fan_up_as_the_unit_heats(twin: TwinBmc) -> None:
    fan = twin.rack.board(UNIT).fans[0]
    await eventually(lambda: fan.duty_percent() == 30.0, "the idle duty")
    unit = twin.rack.unit(UNIT)
    unit.thermal.temperature = 74.0  # a hot SoC, e.g. after a heavy job
    await eventually(lambda: fan.duty_percent() > 80.0, "the policy to react")
    await eventually(lambda: fan.rpm() > 6400, "the rotor to follow the duty")


async def test_a_stalled_fan_raises_a_critical_event_and_clears_it(twin: TwinBmc) -> None:
    fan = twin.rack.unit(UNIT).fan
    policy = twin.service.fans
    await eventually(lambda: fan.rpm() > 2000, "the fan to spin")
    fan.stall()
    await eventually(lambda: "fan-1" in policy.stalled, "the stall to be detected", limit=20)
    async with _client(twin) as http:
        body = (await http.get(f"{FANS}/fan-1")).json()
        assert body["SpeedPercent"]["SpeedRPM"] == 0
        assert body["Status"]["Health"] == "Critical"
        entries = (await http.get(EVENT_LOG)).json()["Members"]
        stall = [e for e in entries if e["MessageId"].endswith("BelowLowerCriticalThreshold")]
        assert len(stall) == 1, "one event per stall, not one per sample"
        assert stall[0]["MessageArgs"][0] == "fan-1"
        assert stall[0]["Severity"] == "Critical"
        fan.free()
        await eventually(lambda: "fan-1" not in policy.stalled, "the fan to turn again", limit=20)
        entries = (await http.get(EVENT_LOG)).json()["Members"]
        normal = [
            e
            for e in entries
            if e["MessageId"].endswith("SensorReadingNormalRange")
            and e["MessageArgs"][0] == "fan-1"
        ]
        assert len(normal) == 1
        body = (await http.get(f"{FANS}/fan-1")).json()
        assert body["Status"]["Health"] == "OK"


async def test_metrics_report_each_fan_speed_and_duty(twin: TwinBmc) -> None:
    fan = twin.rack.board(UNIT).fans[0]
    await eventually(lambda: fan.rpm() > 2000, "the fan to spin")
    async with httpx.AsyncClient(base_url=twin.url, verify=client_context(twin.ca)) as http:
        text = (await http.get("/metrics", headers={"Accept": OPENMETRICS})).text
    parsed = text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    families = {f.name: f for f in parsed}
    (rpm,) = families["racklet_unit_fan_rpm"].samples
    assert rpm.labels == {"unit": UNIT, "fan": "fan-1"}
    assert 2000 < rpm.value <= 8000
    (duty,) = families["racklet_unit_fan_duty_ratio"].samples
    assert duty.value == pytest.approx(0.3)


async def test_dmtf_redfish_library_reads_the_fan(twin: TwinBmc) -> None:
    fan = twin.rack.board(UNIT).fans[0]
    await eventually(lambda: fan.rpm() > 2000, "the fan to spin")

    def read() -> dict[str, Any]:
        client = redfish.redfish_client(
            base_url=twin.url, username=READER[0], password=READER[1], cafile=str(twin.ca)
        )
        client.login(auth="session")
        try:
            thermal = client.get(f"/redfish/v1/Chassis/{UNIT}/ThermalSubsystem").dict
            members = client.get(thermal["Fans"]["@odata.id"]).dict["Members"]
            body: dict[str, Any] = client.get(members[0]["@odata.id"]).dict
            return body
        finally:
            client.logout()

    body = await asyncio.to_thread(read)
    assert body["Id"] == "fan-1"
    assert body["SpeedPercent"]["SpeedRPM"] > 2000
