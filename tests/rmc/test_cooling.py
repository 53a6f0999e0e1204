"""The rack's fan zones: PID control over the twin's physics, failsafe, validation.

The controller drives the twin's real rack fans (tach lag) and reads the slot sensors over
the units' thermal models; time is a manual clock so a 40-minute run takes a moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from racklet.bmc.login import EventBus
from racklet.hw import RackBoard
from racklet.log import get_logger
from racklet.rmc import RmcConfigError
from racklet.rmc._cooling import CoolingController, ZoneMode
from racklet.rmc._pid import CoolingConfig, load_cooling, parse_cooling
from racklet.rmc._rack import RackMonitor
from racklet.twin import RackDescription, SimClock, TwinRack
from racklet.twin._faults import FaultEngine
from racklet.twin._rack_board import SensorFailure
from tests.bmc.conftest import ManualClock
from tests.rmc.conftest import idle_os

SETPOINT = 55.0


def zone_document(**overrides: Any) -> dict[str, Any]:
    zone: dict[str, Any] = {
        "name": "rack",
        "fans": ["rack-fan-1", "rack-fan-2"],
        "inputs": [
            {"sensor": f"slot-{n}", "setpointCelsius": SETPOINT, "pid": {"kp": 4, "ki": 0.1}}
            for n in (1, 2, 3)
        ],
    }
    zone.update(overrides)
    return {"periodSeconds": 1.0, "zones": [zone]}


@dataclass
class Cooled:
    rack: TwinRack
    board: RackBoard
    clock: ManualClock
    controller: CoolingController
    events: EventBus

    def run(self, seconds: int) -> None:
        """``seconds`` control periods of one second: control, then physics."""
        for _ in range(seconds):
            self.controller.step()
            self.rack.step(1.0)
            self.clock.advance(1.0)

    def duty(self) -> float:
        return self.board.fans[0].duty_percent()

    def hottest(self) -> float:
        return max(unit.temperature for unit in self.rack.units.values())


@pytest.fixture
async def cooled(tmp_path: Path) -> AsyncIterator[Cooled]:
    clock = ManualClock()
    # The rack's physics loop is never started: the test steps it on the manual clock.
    rack = TwinRack(RackDescription(units=3), cast(SimClock, clock), idle_os, storage_root=tmp_path)
    board = rack.rack_board()
    for unit in rack.units.values():
        unit.power_on()
    await asyncio.sleep(0)
    clock.advance(10.0)  # past the boot ROM: every unit's OS runs, idle
    for _ in range(5):
        await asyncio.sleep(0)
    events = EventBus()
    controller = CoolingController(
        parse_cooling(zone_document()),
        {fan.name: fan for fan in board.fans},
        board.temperatures,
        clock,
        events,
        get_logger("test"),
        "/redfish/v1/Chassis/rack/ThermalSubsystem",
    )
    try:
        yield Cooled(rack, board, clock, controller, events)
    finally:
        for unit in rack.units.values():
            await unit.stop()


async def test_a_load_step_raises_pwm_and_the_zone_settles(cooled: Cooled) -> None:
    cooled.run(1800)
    assert cooled.hottest() < SETPOINT - 2, "idle units need no more than the zone minimum"
    assert cooled.duty() == pytest.approx(20.0, abs=1.0)
    for unit in cooled.rack.units.values():
        unit.set_load(0.5)
    cooled.run(1500)
    assert cooled.duty() > 60.0, "the load step must raise the fans' PWM"
    assert cooled.hottest() == pytest.approx(SETPOINT, abs=0.5), "held at the set-point"
    before = cooled.duty()
    cooled.run(120)
    assert cooled.duty() == pytest.approx(before, abs=0.5), "and settled, not hunting"
    rpm = cooled.board.fans[0].rpm()
    assert rpm == pytest.approx(cooled.board.fans[0].rated_rpm * before / 100, rel=0.03)
    assert cooled.controller.zones["rack"].mode is ZoneMode.NORMAL


@pytest.mark.parametrize(
    ("failure", "message"),
    [(SensorFailure.NAN, "InvalidSensorReading"), (SensorFailure.LOST, "SensorFailure")],
)
async def test_a_bad_sensor_sends_its_zone_to_failsafe_in_one_period(
    cooled: Cooled, failure: SensorFailure, message: str
) -> None:
    cooled.run(600)
    assert cooled.duty() < 50
    cooled.rack.slot_sensors["slot-2"].failure = failure
    cooled.run(1)
    state = cooled.controller.zones["rack"]
    assert state.mode is ZoneMode.FAILSAFE
    assert state.lost == {"slot-2"}
    assert all(fan.duty_percent() == 100.0 for fan in cooled.board.fans)
    ids = [event.message_id for event in cooled.events.events()]
    assert ids == [f"SensorEvent.1.1.{message}", "Environmental.1.4.FanGroupWarning"]
    assert cooled.events.events()[0].args == ("slot-2",)
    cooled.run(30)
    assert state.mode is ZoneMode.FAILSAFE, "failsafe holds while the sensor is bad"
    cooled.rack.slot_sensors["slot-2"].failure = None
    cooled.run(1)
    assert cooled.controller.zones["rack"].mode is ZoneMode.NORMAL
    ids = [event.message_id for event in cooled.events.events()]
    assert ids[2:] == ["SensorEvent.1.1.SensorRestored", "Environmental.1.4.FanGroupNormal"]
    cooled.run(300)
    assert cooled.duty() < 50, "back under PID control"


async def test_a_stuck_sensor_goes_stale_and_sends_its_zone_to_failsafe(cooled: Cooled) -> None:
    """The fault engine's ``stuck`` fault on slot-2's input: the reading freezes; after
    ``staleAfterPeriods`` (30) unchanged periods the zone goes to failsafe with an event, and
    comes back when the fault clears. A live, steady sensor never trips it (its noise)."""
    engine = FaultEngine(cooled.rack)
    cooled.run(900)
    state = cooled.controller.zones["rack"]
    assert state.mode is ZoneMode.NORMAL and cooled.duty() < 50, "steady, noisy: never stale"
    await engine.inject("stuck", "SensorFailure", {"sensor": "slot", "mode": "stuck"}, ["unit-2"])
    stale_after = cooled.controller.config.stale_after_periods
    cooled.run(stale_after - 1)
    assert state.mode is ZoneMode.NORMAL, "not yet: a reading may repeat for a while"
    cooled.run(2)
    assert state.mode is ZoneMode.FAILSAFE and state.lost == {"slot-2"}
    assert all(fan.duty_percent() == 100.0 for fan in cooled.board.fans)
    ids = [event.message_id for event in cooled.events.events()]
    assert ids == ["SensorEvent.1.1.SensorFailure", "Environmental.1.4.FanGroupWarning"]
    assert cooled.events.events()[0].args == ("slot-2",)
    await engine.clear("stuck")
    cooled.run(3)
    assert state.mode is ZoneMode.NORMAL
    assert [e.message_id for e in cooled.events.events()][2:] == [
        "SensorEvent.1.1.SensorRestored",
        "Environmental.1.4.FanGroupNormal",
    ]


def test_the_stale_window_is_validated() -> None:
    assert parse_cooling({"staleAfterPeriods": 5, "zones": []}).stale_after_periods == 5
    for bad in (0, 1, 100_000, "x"):
        with pytest.raises(RmcConfigError, match="staleAfterPeriods"):
            parse_cooling({"staleAfterPeriods": bad, "zones": []})


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        ({"inputs": [{"sensor": "slot-1", "setpointCelsius": 55, "pid": {"kp": -1}}]}, "kp"),
        ({"inputs": [{"sensor": "slot-1", "setpointCelsius": 55, "pid": {"kp": 1e9}}]}, "kp"),
        (
            {
                "inputs": [
                    {
                        "sensor": "slot-1",
                        "setpointCelsius": 55,
                        "pid": {"kp": 1, "outMin": 80, "outMax": 20},
                    }
                ]
            },
            "outMin",
        ),
        ({"inputs": [{"sensor": "slot-1", "setpointCelsius": 500, "pid": {"kp": 1}}]}, "setpoint"),
        ({"failsafePercent": 0}, "failsafePercent"),
        ({"failsafePercent": 10, "minPercent": 30}, "failsafePercent"),
        ({"fans": []}, "fans"),
        ({"inputs": [{"sensor": "slot-1", "setpointCelsius": 55, "pid": {"kp": 1, "x": 1}}]}, "x"),
    ],
)
def test_a_pid_configuration_out_of_range_is_refused_by_name(
    change: dict[str, Any], culprit: str
) -> None:
    with pytest.raises(RmcConfigError) as caught:
        parse_cooling(zone_document(**change))
    assert culprit in str(caught.value)
    assert "\n" not in str(caught.value), "one line, for the CLI and the log"


async def test_a_zone_naming_a_fan_or_sensor_the_rack_lacks_is_refused(cooled: Cooled) -> None:
    config = parse_cooling(zone_document(fans=["rack-fan-9"]))
    with pytest.raises(RmcConfigError, match="rack-fan-9"):
        CoolingController(
            config,
            {fan.name: fan for fan in cooled.board.fans},
            cooled.board.temperatures,
            cooled.clock,
            EventBus(),
            get_logger("test"),
        )


def test_a_cooling_file_loads_and_a_broken_one_is_one_error(tmp_path: Path) -> None:
    good = tmp_path / "cooling.yaml"
    good.write_text(
        "periodSeconds: 0.5\nzones:\n- name: top\n  fans: [rack-fan-1]\n"
        "  inputs:\n  - sensor: slot-1\n    setpointCelsius: 50\n    pid: {kp: 2, ki: 0.05}\n"
    )
    config = load_cooling(good)
    assert isinstance(config, CoolingConfig)
    assert config.zones[0].inputs[0].pid.kp == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("zones: [\n")
    with pytest.raises(RmcConfigError, match=r"bad\.yaml"):
        load_cooling(bad)


@pytest.mark.parametrize("how", ["unknown fan", "refused file"])
async def test_refused_cooling_runs_every_fan_flat_out_with_a_critical_alert(
    cooled: Cooled, tmp_path: Path, how: str
) -> None:
    bad = parse_cooling(zone_document(fans=["rack-fan-9"])) if how == "unknown fan" else None
    refused = "cooling.yaml: zones.0.inputs.0.pid.kp: too large" if bad is None else None
    monitor = RackMonitor(
        cooled.board, tmp_path, EventBus(), get_logger("test"), bad, refused=refused
    )
    await monitor.start()
    try:
        assert monitor.cooling_refused is not None
        assert all(fan.duty_percent() == 100.0 for fan in cooled.board.fans)
        assert monitor.alerts()[0] == ("Critical", "cooling config bad")
        assert monitor.status_led() == "Lit"
        cooled.clock.advance(5.0)
        await asyncio.sleep(0)
        assert all(fan.duty_percent() == 100.0 for fan in cooled.board.fans), "and stay there"
    finally:
        await monitor.stop()
