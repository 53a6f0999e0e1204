"""The RMC's own chassis: rack fans, cooling zones, busbar power and energy, display, LEDs.

A real twin rack of BMCs behind a real RMC whose board is the twin's rack board: its fans
are driven by the RMC's cooling loop and its busbar meter is the real PAC1921 driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from racklet.rmc._service import UNIT_POLL_SECONDS
from racklet.twin._rack_board import SensorFailure
from tests.rmc.conftest import ADMIN, OPERATOR, READER, Rack, eventually

RACK = "/redfish/v1/Chassis/rack"
CONTROLS = f"{RACK}/Controls"
EVENTS = "/redfish/v1/Managers/rmc/LogServices/EventLog/Entries"


async def test_the_rack_chassis_shows_fans_zones_and_busbar(rack: Rack) -> None:
    assert rack.rmc.monitor is not None
    await eventually(lambda: rack.twin_fans_turning(), "the rack fans to turn")
    async with rack.client(READER) as client:
        chassis = (await client.get(RACK)).json()
        fans = (await client.get(f"{RACK}/ThermalSubsystem/Fans")).json()
        fan = (await client.get(f"{RACK}/ThermalSubsystem/Fans/rack-fan-1")).json()
        controls = (await client.get(CONTROLS)).json()
        zone = (await client.get(f"{CONTROLS}/rack")).json()
        slot = (await client.get(f"{CONTROLS}/rack-slot-1")).json()
        pwm = (await client.get(f"{CONTROLS}/rack-fan-1-pwm")).json()
        environment = (await client.get(f"{RACK}/EnvironmentMetrics")).json()
        missing = await client.get(f"{CONTROLS}/nothing")
    assert chassis["ChassisType"] == "Rack"
    display = chassis["Oem"]["Racklet"]["Display"]
    assert len(display) == 8 and all(len(row) <= 21 for row in display), "a 128x64 OLED"
    assert display[0] == "rack-1" and display[1].startswith("Bus ") and "/100 W" in display[1]
    assert (
        chassis["IndicatorLED"] in ("Off", "Blinking")
        and chassis["LocationIndicatorActive"] is False
    )
    assert [m["@odata.id"] for m in fans["Members"]] == [
        f"{RACK}/ThermalSubsystem/Fans/rack-fan-1",
        f"{RACK}/ThermalSubsystem/Fans/rack-fan-2",
    ]
    assert fan["SpeedPercent"]["SpeedRPM"] > 0
    assert len(controls["Members"]) == 1 + 2 + 2  # the zone, its two slots, two fans' PWM
    assert zone["ControlType"] == "Percent" and zone["ControlMode"] == "Automatic"
    assert zone["Oem"]["Racklet"]["Mode"] == "Normal"
    assert zone["SetPoint"] >= zone["AllowableMin"] == 20.0
    assert slot["ControlType"] == "Temperature" and slot["SetPoint"] == 60.0
    assert slot["Sensor"]["Reading"] is not None
    assert slot["ControlLoop"]["Proportional"] == 4.0
    assert pwm["ControlType"] == "DutyCycle" and pwm["SetPoint"] >= 20.0
    assert environment["PowerLimitWatts"]["SetPoint"] == 100.0
    assert environment["PowerWatts"]["Reading"] is not None
    assert missing.status_code == 404
    assert missing.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(
        "ResourceNotFound"
    )


async def test_a_nan_sensor_shows_failsafe_in_redfish_with_events(rack: Rack) -> None:
    rack.rack.slot_sensors["slot-2"].failure = SensorFailure.NAN
    async with rack.client(READER) as client:

        async def mode() -> str:
            zone = (await client.get(f"{CONTROLS}/rack")).json()
            return str(zone["Oem"]["Racklet"]["Mode"])

        await eventually_async(mode, "Failsafe")
        zone = (await client.get(f"{CONTROLS}/rack")).json()
        pwm = (await client.get(f"{CONTROLS}/rack-fan-2-pwm")).json()
        slot = (await client.get(f"{CONTROLS}/rack-slot-2")).json()
        thermal = (await client.get(f"{RACK}/ThermalSubsystem")).json()
        chassis = (await client.get(RACK)).json()
        events = (await client.get(EVENTS)).json()
        assert zone["ControlMode"] == "Override"
        assert zone["Oem"]["Racklet"]["LostSensors"] == ["slot-2"]
        assert pwm["SetPoint"] == 100.0
        assert slot["Sensor"]["Reading"] is None and slot["Status"]["Health"] == "Warning"
        assert thermal["Status"]["Health"] == "Warning"
        assert any("failsafe" in row for row in chassis["Oem"]["Racklet"]["Display"])
        ids = [e["MessageId"] for e in events["Members"]]
        assert "SensorEvent.1.1.InvalidSensorReading" in ids
        assert "Environmental.1.4.FanGroupWarning" in ids
        rack.rack.slot_sensors["slot-2"].failure = None
        await eventually_async(mode, "Normal")
        events = (await client.get(EVENTS)).json()
    assert "Environmental.1.4.FanGroupNormal" in [e["MessageId"] for e in events["Members"]]


async def eventually_async(
    read: Callable[[], Awaitable[str]], want: str, within: float = 20.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (got := await read()) != want:
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {want!r}, last {got!r}")
        await asyncio.sleep(0.05)


async def test_the_busbar_reading_is_every_unit_and_fan_together(rack: Rack) -> None:
    monitor = rack.rmc.monitor
    assert monitor is not None
    for unit in rack.rack.units.values():
        unit.power_on()
    await eventually(
        lambda: all(u.power_watts >= u.profile.idle_watts for u in rack.rack.units.values()),
        "every unit to run",
    )
    await asyncio.sleep(0.3)  # several samples at speed 20
    assert monitor.reading is not None
    truth = sum(u.power_watts for u in rack.rack.units.values()) + sum(
        f.power_watts for f in rack.rack.rack_fans
    )
    # The PAC1921 quantises the current (about 24 mA at this gain: 0.13 W) and samples
    # once a simulated second while the fans keep changing: within 0.3 W.
    assert abs(monitor.reading.watts - truth) < 0.3, (monitor.reading, truth)
    # And the RMC checks it itself, against what the BMCs and the fans' meter say.
    await eventually(
        lambda: all(u.power_state == "On" and u.power_watts for u in monitor.units.values()),
        "every BMC polled with its unit on",
    )
    await asyncio.sleep(UNIT_POLL_SECONDS + 0.5)  # one more poll: both readings settled
    gap = monitor.unaccounted_watts()
    assert gap is not None and abs(gap) < 0.5, gap
    assert not any("unaccounted" in text for _, text in monitor.alerts())


async def test_metrics_are_open_and_well_formed(rack: Rack) -> None:
    async with rack.client(None) as client:
        answer = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        text = await client.get("/metrics")  # a scraper that does not ask for OpenMetrics
    assert answer.status_code == 200
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    parsed = text_string_to_metric_families(answer.text)  # type: ignore[no-untyped-call]
    families = {f.name: f for f in parsed}
    assert families["racklet_rack_energy_joules"].type == "counter"
    fans = {s.labels["fan"] for s in families["racklet_rack_fan_rpm"].samples}
    assert fans == {"rack-fan-1", "rack-fan-2"}
    assert families["racklet_rack_power_budget_watts"].samples[0].value == 100.0
    assert families["racklet_rack_zone_failsafe"].samples[0].value == 0.0


async def test_the_rack_locate_led_needs_an_operator(rack: Rack) -> None:
    async with rack.client(READER) as reader:
        refused = await reader.patch(RACK, json={"LocationIndicatorActive": True})
    async with rack.client(OPERATOR) as operator:
        bad = await operator.patch(RACK, json={"LocationIndicatorActive": "yes"})
        other = await operator.patch(RACK, json={"ChassisType": "Blade"})
        lit = await operator.patch(RACK, json={"LocationIndicatorActive": True})
    async with rack.client(ADMIN) as admin:
        seen = (await admin.get(RACK)).json()
    assert refused.status_code == 403
    assert bad.status_code == 400 and other.status_code == 400
    assert lit.status_code == 200 and seen["LocationIndicatorActive"] is True


async def test_rack_energy_never_goes_back_across_an_rmc_restart(rack: Rack) -> None:
    monitor = rack.rmc.monitor
    assert monitor is not None
    rack.rack.unit("unit-1").power_on()
    await eventually(lambda: monitor.energy_joules > 10, "some energy on the busbar")
    await monitor.stop()
    saved = monitor.energy_joules
    monitor.energy_joules = 0.0  # a fresh process would start from zero
    await monitor.start()
    assert monitor.energy_joules >= saved


async def test_a_units_locate_led_through_the_rmc(rack: Rack) -> None:
    path = "/redfish/v1/Chassis/unit-2_unit-2"
    led = rack.rack.board("unit-2").locate_led
    assert led is not None and not led.is_lit()
    async with rack.client(READER) as reader:
        refused = await reader.patch(path, json={"LocationIndicatorActive": True})
    async with rack.client(OPERATOR) as operator:
        bad = await operator.patch(path, json={"LocationIndicatorActive": 1})
        other = await operator.patch(path, json={"ChassisType": "Rack"})
        lit = await operator.patch(path, json={"LocationIndicatorActive": True})
        seen = (await operator.get(path)).json()
    assert refused.status_code == 403
    assert bad.status_code == 400 and other.status_code == 400
    assert lit.status_code == 200 and seen["LocationIndicatorActive"] is True, lit.text
    assert led.is_lit(), "the board's LED latch is set"
    assert not rack.rack.board("unit-1").locate_led.is_lit()  # type: ignore[union-attr]
