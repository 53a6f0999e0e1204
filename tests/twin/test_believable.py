"""A believable rack: boards differ (reproducibly), load drives power and heat through the
profile's curve, and heat rises from the units below."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from racklet.hw import Activity
from racklet.twin import TwinRack, load_profile
from racklet.twin._fan import TwinFan

MakeRack = Callable[..., TwinRack]
HOUR = 3600.0


def _idles(rack: TwinRack) -> list[float]:
    return [unit.idle_watts for unit in rack.units.values()]


def _run(rack: TwinRack, load: dict[str, float], seconds: float, duty: float = 30.0) -> None:
    """Power the named units at the given loads (the others stay off); step by hand."""
    for name, fraction in load.items():
        unit = rack.unit(name)
        unit.power_on()
        unit.set_activity(Activity.RUNNING)
        unit.set_load(fraction)
        rack.board(name).fans[0].set_duty_percent(duty)
    for _ in range(int(seconds / 5.0)):
        rack.step(5.0)


async def test_a_fresh_rack_s_units_differ_within_the_cited_spread(make_rack: MakeRack) -> None:
    profile = load_profile("raspberry-pi-4")
    rack = make_rack(units=16)
    idles = _idles(rack)
    assert len({round(watts, 6) for watts in idles}) == 16, "every board is its own"
    bound = 2 * profile.idle_spread * profile.idle_watts  # clipped at two deviations
    assert all(abs(watts - profile.idle_watts) <= bound + 1e-9 for watts in idles)
    assert max(idles) - min(idles) > profile.idle_spread * profile.idle_watts
    for unit in rack.units.values():
        assert abs(unit.full_load_watts - profile.full_load_watts) <= (
            2 * profile.full_load_spread * profile.full_load_watts + 1e-9
        )
    assert _idles(make_rack(units=16)) == idles, "the same seed builds the same rack"
    assert _idles(make_rack(units=16, seed=7)) != idles, "another seed, other boards"


async def test_load_drives_power_and_heat_through_the_profile_s_curve(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=1)
    unit = rack.unit("unit-1")
    _run(rack, {"unit-1": 0.0}, HOUR)
    idle_watts, idle_celsius = unit.power_watts, unit.temperature
    assert idle_watts == pytest.approx(unit.idle_watts)
    unit.set_load(0.75)
    for _ in range(int(HOUR / 5.0)):
        rack.step(5.0)
    span = unit.full_load_watts - unit.idle_watts
    assert unit.power_watts == pytest.approx(unit.idle_watts + 0.75 * span)
    airflow = rack.board("unit-1").fans[0].rpm() / 8000.0 + unit.rack_airflow
    resistance = unit.thermal.resistance_at(airflow)
    assert unit.temperature == pytest.approx(
        unit.profile.ambient_celsius + unit.power_watts * resistance, abs=0.2
    )
    assert unit.temperature > idle_celsius + 0.75 * span * resistance - 0.5


async def test_a_unit_above_hot_ones_runs_warmer_than_at_the_bottom(make_rack: MakeRack) -> None:
    alone = make_rack(units=5)
    _run(alone, {"unit-5": 0.5}, HOUR)
    stacked = make_rack(units=5)
    _run(stacked, {"unit-1": 1.0, "unit-2": 1.0, "unit-3": 1.0, "unit-4": 1.0, "unit-5": 0.5}, HOUR)
    top_alone, top_stacked = alone.unit("unit-5"), stacked.unit("unit-5")
    assert top_alone.power_watts == pytest.approx(top_stacked.power_watts)
    below = sum(stacked.unit(f"unit-{slot}").power_watts for slot in range(1, 5))
    rise = top_alone.profile.inlet_rise_c_per_w * below
    assert top_stacked.thermal.ambient == pytest.approx(top_alone.thermal.ambient + rise)
    assert top_stacked.temperature == pytest.approx(top_alone.temperature + rise, abs=0.05)
    assert top_stacked.temperature > top_alone.temperature + 2.0
    assert stacked.unit("unit-1").thermal.ambient == top_alone.profile.ambient_celsius

    for fan in stacked.rack_fans:  # the RMC slows the rack fans to half speed
        fan.set_duty_percent(50.0)
    for _ in range(int(HOUR / 5.0)):
        stacked.step(5.0)
    assert stacked.airflow == pytest.approx(0.5)  # the same heat warms half the air twice as much
    assert top_stacked.thermal.ambient == pytest.approx(top_alone.thermal.ambient + 2 * rise)


async def test_the_board_s_sensors_read_with_noise_around_the_truth(make_rack: MakeRack) -> None:
    rack = make_rack(units=1)
    _run(rack, {"unit-1": 0.5}, 600.0)
    sensor = rack.board("unit-1").temperature
    lsb = rack.unit("unit-1").profile.temperature_lsb_celsius
    readings = [sensor.read_celsius() for _ in range(400)]
    assert len(set(readings)) >= 3, "a real sensor jitters by a code or so"
    assert all(abs(r / lsb - round(r / lsb)) < 1e-6 for r in readings), "in steps of its LSB"
    truth = rack.unit("unit-1").temperature
    assert sum(readings) / len(readings) == pytest.approx(truth, abs=lsb / 4)


def test_a_fan_s_ground_truth_energy_is_exact_for_any_step() -> None:
    coarse, fine = TwinFan("f", 8000.0, 1.5, 0.5), TwinFan("f", 8000.0, 1.5, 0.5)
    for fan in (coarse, fine):
        fan.set_duty_percent(80.0)
    coarse.step(10.0)
    for _ in range(100_000):
        fine.step(1e-4)
    assert coarse.energy_joules == pytest.approx(fine.energy_joules, rel=1e-4)
    assert coarse.power_watts == pytest.approx(0.5 * 0.8**3, rel=1e-2)  # affinity: P ∝ n³
    settled = coarse.energy_joules
    coarse.step(100.0)
    assert coarse.energy_joules - settled == pytest.approx(100.0 * 0.5 * 0.8**3, rel=1e-3)


@pytest.mark.parametrize("low", [20.0, 0.0])
async def test_slower_rack_fans_make_every_unit_warmer_through_one_airflow(
    make_rack: MakeRack, low: float
) -> None:
    """The rack fans' airflow is the air that carries the heat of the units below to each
    inlet: at a low PWM (a zone at its floor; 0: the fans stopped) every unit runs warmer than
    at full PWM (a zone in failsafe), and the inlet rise grows as 1 / airflow."""
    load = {f"unit-{slot}": 0.75 for slot in range(1, 5)}
    slow, fast = make_rack(units=4), make_rack(units=4)
    for rack, duty in ((slow, low), (fast, 100.0)):
        for fan in rack.rack_fans:
            fan.set_duty_percent(duty)
        _run(rack, load, HOUR)
    assert slow.airflow == pytest.approx(max(0.1, low / 100.0))
    assert fast.airflow == pytest.approx(1.0)
    for name in load:
        assert slow.unit(name).temperature > fast.unit(name).temperature + 0.5, name
    top_slow, top_fast = slow.unit("unit-4"), fast.unit("unit-4")
    rise_fast = top_fast.thermal.ambient - top_fast.profile.ambient_celsius
    rise_slow = top_slow.thermal.ambient - top_slow.profile.ambient_celsius
    assert rise_slow == pytest.approx(rise_fast / slow.airflow, rel=1e-6)
    assert rise_slow > 3 * rise_fast
