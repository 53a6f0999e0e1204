"""The twin's fan: the rotor lags the PWM duty, a stuck rotor reads 0, airflow cools the SoC."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from racklet.hw import Activity, Fan
from racklet.twin import TwinRack, load_profile
from racklet.twin._fan import TwinFan
from tests.twin.conftest import eventually


def test_rpm_follows_duty_with_a_first_order_lag() -> None:
    fan: Fan = TwinFan("fan-1", rated_rpm=8000.0, time_constant_seconds=1.5)  # the HAL's Fan
    assert isinstance(fan, TwinFan)
    fan.set_duty_percent(50.0)
    assert fan.rpm() == 0.0, "a rotor at rest does not jump to speed"
    fan.step(1.5)  # one time constant: 1 - 1/e of the way to 4000 RPM
    assert fan.rpm() == round(4000.0 * (1 - math.exp(-1.0)))
    for _ in range(20):
        fan.step(1.5)
    assert fan.rpm() == 4000.0
    fan.set_duty_percent(25.0)
    fan.step(1.5)
    assert 2000.0 < fan.rpm() < 4000.0, "it slows down gradually too"


def test_a_long_step_lands_on_the_target_without_overshoot() -> None:
    fan = TwinFan("fan-1", rated_rpm=8000.0, time_constant_seconds=1.5)
    fan.set_duty_percent(100.0)
    fan.step(600.0)  # a fast --speed takes long steps
    assert fan.rpm() == 8000.0
    assert fan.airflow == pytest.approx(1.0)


def test_duty_outside_0_to_100_is_refused() -> None:
    fan = TwinFan("fan-1", rated_rpm=8000.0, time_constant_seconds=1.5)
    for bad in (-1.0, 100.5):
        with pytest.raises(ValueError, match=r"within 0\.\.100"):
            fan.set_duty_percent(bad)
    assert fan.duty_percent() == 0.0


def test_a_stalled_rotor_reads_zero_however_hard_it_is_driven() -> None:
    fan = TwinFan("fan-1", rated_rpm=8000.0, time_constant_seconds=1.5)
    fan.set_duty_percent(100.0)
    fan.step(10.0)
    fan.stall()
    assert fan.rpm() == 0.0
    fan.step(10.0)
    assert (fan.rpm(), fan.duty_percent(), fan.airflow) == (0.0, 100.0, 0.0)
    fan.free()
    fan.step(10.0)
    assert fan.rpm() > 7000.0


def test_profiles_carry_a_fan_that_cools_better_than_still_air() -> None:
    for name in ("raspberry-pi-4", "raspberry-pi-5"):
        profile = load_profile(name)
        assert profile.fan_max_rpm > 0
        assert profile.fan_thermal_resistance_c_per_w is not None
        assert profile.fan_thermal_resistance_c_per_w < profile.thermal_resistance_c_per_w


async def _loaded_unit_after_an_hour(rack: TwinRack, duty: float) -> tuple[float, bool]:
    unit = rack.unit("unit-1")
    unit.power_on()
    await eventually(lambda: unit.activity is Activity.RUNNING, "the unit to run")
    unit.set_load(1.0)
    rack.board("unit-1").fans[0].set_duty_percent(duty)
    for fan in rack.rack_fans:  # the board's fan alone: the rack's own fans stopped
        fan.set_duty_percent(0.0)
    hottest = unit.temperature
    throttled = False
    for _ in range(360):  # one simulated hour, stepped by hand: no wall-clock physics
        rack.step(10.0)
        hottest = max(hottest, unit.temperature)
        throttled = throttled or unit.throttled
    return hottest, throttled


async def test_a_fan_at_full_speed_keeps_a_loaded_pi4_below_throttling(
    make_rack: Callable[..., TwinRack],
) -> None:
    rack = make_rack(units=1)
    hottest, throttled = await _loaded_unit_after_an_hour(rack, 100.0)
    profile = load_profile("raspberry-pi-4")
    assert profile.fan_thermal_resistance_c_per_w is not None
    steady = profile.ambient_celsius + rack.unit("unit-1").full_load_watts * (
        profile.fan_thermal_resistance_c_per_w
    )
    assert hottest < profile.throttle_celsius
    assert hottest == pytest.approx(steady, abs=0.5)
    assert not throttled


async def test_without_the_fan_a_loaded_pi4_throttles(
    make_rack: Callable[..., TwinRack],
) -> None:
    hottest, throttled = await _loaded_unit_after_an_hour(make_rack(units=1), 0.0)
    assert throttled
    assert hottest >= load_profile("raspberry-pi-4").throttle_celsius


async def test_a_stalled_fan_lets_the_unit_heat_up(make_rack: Callable[..., TwinRack]) -> None:
    rack = make_rack(units=1)
    rack.unit("unit-1").fan.stall()
    hottest, throttled = await _loaded_unit_after_an_hour(rack, 100.0)
    assert rack.board("unit-1").fans[0].rpm() == 0.0
    assert throttled and hottest >= 80.0
