"""Energy integrates over the board's clock; /metrics is OpenMetrics a scraper can parse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from racklet.metrics import OPENMETRICS
from tests.bmc.conftest import UNIT, Bench, FakeUnit, ManualClock, eventually, running_bench
from tests.promtool import check_both_formats


async def test_energy_is_power_integrated_over_simulated_time(tmp_path: Path) -> None:
    clock = ManualClock()
    unit = FakeUnit(on=True, running_watts=3.0)
    async with running_bench(tmp_path, clock, unit) as bench:
        meter = bench.service.context.meter
        await eventually(lambda: meter.sampled_at == 0.0, "the first sample")
        clock.advance(10.0)
        await eventually(lambda: meter.sampled_at == 10.0, "a sample at t=10")
        assert bench.service.energy_joules == pytest.approx(30.0)
        unit.running_watts = 5.0
        clock.advance(0.5)  # one sample at the new draw: the trapezoid spans the step
        await eventually(lambda: meter.sampled_at == 10.5, "a sample at t=10.5")
        clock.advance(4.0)
        await eventually(lambda: meter.sampled_at == 14.5, "a sample at t=14.5")
        assert bench.service.energy_joules == pytest.approx(30.0 + 0.5 * 4.0 + 4.0 * 5.0)
        unit.on = False
        clock.advance(0.5)
        await eventually(lambda: meter.sampled_at == 15.0, "the first sample while off")
        clock.advance(100.0)
        await eventually(lambda: meter.sampled_at == 115.0, "a later sample while off")
        assert bench.service.energy_joules == pytest.approx(52.0 + 0.5 * 5.0 / 2)


async def test_metrics_are_openmetrics_with_every_unit_family(bench: Bench) -> None:
    async with bench.client() as client:
        await client.post(
            f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        meter = bench.service.context.meter
        await eventually(lambda: meter.reading is not None and meter.reading.watts > 0, "a reading")
        await eventually(lambda: meter.energy_joules > 0, "some energy")
    async with bench.client(auth=None) as open_client:
        response = await open_client.get("/metrics", headers={"Accept": OPENMETRICS})
        await check_both_formats(open_client, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/openmetrics-text; version=1.0.0"
    )
    parsed = text_string_to_metric_families(response.text)  # type: ignore[no-untyped-call]
    families = {f.name: f for f in parsed}
    expected = {
        "racklet_unit_power_watts": "gauge",
        "racklet_unit_energy_joules": "counter",
        "racklet_unit_temperature_celsius": "gauge",
        "racklet_unit_volts": "gauge",
        "racklet_unit_amperes": "gauge",
        "racklet_unit_powered": "gauge",
    }
    for name, kind in expected.items():
        assert families[name].type == kind, name
        assert families[name].samples
        assert all(sample.labels == {"unit": UNIT} for sample in families[name].samples)
    energy = {s.name: s.value for s in families["racklet_unit_energy_joules"].samples}
    assert energy["racklet_unit_energy_joules_total"] > 0
    assert energy["racklet_unit_energy_joules_created"] == pytest.approx(meter.energy_created)
    assert families["racklet_unit_powered"].samples[0].value == 1.0
    assert families["racklet_twin_speed"].samples[0].value == 50.0  # the bench's FastClock
    assert families["racklet_unit_power_watts"].samples[0].value == pytest.approx(3.2)
    assert families["racklet_unit_temperature_celsius"].samples[0].value == pytest.approx(41.5)


async def test_sensors_and_environment_metrics_agree(bench: Bench) -> None:
    chassis = f"/redfish/v1/Chassis/{UNIT}"
    async with bench.client() as client:
        await client.post(
            f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        meter = bench.service.context.meter
        await eventually(lambda: meter.reading is not None and meter.reading.watts > 0, "a reading")
        body = (await client.get(chassis)).json()
        assert body["MaxPowerWatts"] == 15.0 and body["PowerState"] == "On"
        sensors = (await client.get(body["Sensors"]["@odata.id"])).json()
        readings = {}
        for member in sensors["Members"]:
            sensor = (await client.get(member["@odata.id"])).json()
            readings[sensor["ReadingType"]] = (sensor["Reading"], sensor["ReadingUnits"])
            if sensor["ReadingType"] == "EnergyJoules":
                reset_time = sensor["SensorResetTime"]
        env = (await client.get(body["EnvironmentMetrics"]["@odata.id"])).json()
    assert readings["Power"] == (pytest.approx(3.2), "W")
    assert readings["Voltage"] == (pytest.approx(5.1), "V")
    assert readings["Current"][1] == "A"
    assert readings["Temperature"] == (pytest.approx(41.5), "Cel")
    assert readings["EnergyJoules"][1] == "J"
    assert env["PowerWatts"]["Reading"] == pytest.approx(3.2)
    assert env["TemperatureCelsius"]["Reading"] == pytest.approx(41.5)
    assert env["EnergyJoules"]["DataSourceUri"].endswith("/Sensors/energy")
    began = dt.datetime.fromisoformat(reset_time)
    assert began.tzinfo is not None
    assert abs(began.timestamp() - meter.energy_created) < 1.0


async def test_an_unreadable_power_monitor_is_reported_not_fatal(bench: Bench) -> None:
    bench.unit.monitor_fails = True
    meter = bench.service.context.meter
    await eventually(lambda: not meter.monitor_ok, "the failed read to be noticed")
    async with bench.client() as client:
        sensor = (await client.get(f"/redfish/v1/Chassis/{UNIT}/Sensors/power")).json()
    assert sensor["Reading"] is None
    assert sensor["Status"] == {"State": "UnavailableOffline", "Health": "Critical"}


async def test_an_empty_slot_is_absent(bench: Bench) -> None:
    bench.unit.present = False
    async with bench.client() as client:
        chassis = (await client.get(f"/redfish/v1/Chassis/{UNIT}")).json()
        system = (await client.get(f"/redfish/v1/Systems/{UNIT}")).json()
    assert chassis["Status"] == {"State": "Absent"}
    assert system["Status"]["State"] == "Absent"


async def test_power_metrics_keep_the_last_minute_of_samples(tmp_path: Path) -> None:
    """The old ``Power``'s ``PowerMetrics`` (asked by OCP's rack-manager profile of each unit):
    min, max and mean of the monitor's samples in the last minute, older ones forgotten."""
    clock = ManualClock()
    unit = FakeUnit(on=True, running_watts=3.0)
    async with running_bench(tmp_path, clock, unit) as bench:
        meter = bench.service.context.meter
        await eventually(lambda: meter.sampled_at == 0.0, "the first sample")
        unit.running_watts = 5.0
        clock.advance(30.0)
        await eventually(lambda: meter.sampled_at == 30.0, "a sample at t=30")
        async with bench.client() as client:
            power = (await client.get(f"/redfish/v1/Chassis/{UNIT}/Power")).json()
            metrics = power["PowerControl"][0]["PowerMetrics"]
            assert metrics == {
                "IntervalInMin": 1,
                "MinConsumedWatts": pytest.approx(3.0),
                "MaxConsumedWatts": pytest.approx(5.0),
                "AverageConsumedWatts": pytest.approx(4.0),
            }
            clock.advance(31.0)  # the 3 W sample at t=0 is now older than a minute
            await eventually(lambda: meter.sampled_at == 61.0, "a sample at t=61")
            power = (await client.get(f"/redfish/v1/Chassis/{UNIT}/Power")).json()
        metrics = power["PowerControl"][0]["PowerMetrics"]
        assert metrics["MinConsumedWatts"] == metrics["MaxConsumedWatts"] == pytest.approx(5.0)
        assert metrics["AverageConsumedWatts"] == pytest.approx(5.0)


async def test_a_unit_switched_off_reads_no_power_at_once(tmp_path: Path) -> None:
    """The power event and the reading agree: a look woken by a ForceOff (the controller
    follows the BMC's event stream) reads the monitor's value after the switch, not the last
    periodic sample of the unit running (an Off unit shown drawing 3 W). The manual clock
    stands still, so no periodic sample can explain the new reading."""
    clock = ManualClock()
    unit = FakeUnit(on=True, running_watts=3.0)
    async with running_bench(tmp_path, clock, unit) as bench:
        meter = bench.service.context.meter
        await eventually(lambda: meter.sampled_at == 0.0, "the first sample")
        environment = f"/redfish/v1/Chassis/{UNIT}/EnvironmentMetrics"
        async with bench.client() as client:
            running = (await client.get(environment)).json()
            assert running["PowerWatts"]["Reading"] == pytest.approx(3.0)
            reset = await client.post(
                f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset",
                json={"ResetType": "ForceOff"},
            )
            assert reset.status_code in (200, 204)
            off = (await client.get(environment)).json()
        assert off["PowerWatts"]["Reading"] == pytest.approx(0.0)
        assert bench.service.energy_joules == pytest.approx(0.0)  # no time passed
