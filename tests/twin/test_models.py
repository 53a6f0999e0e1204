"""Profiles, the rack description, the thermal model and the busbar, without running tasks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from racklet.twin import RackDescription, TwinError, load_profile
from racklet.twin._busbar import Busbar
from racklet.twin._thermal import ThermalModel


def test_profiles_load_with_their_figures() -> None:
    pi4 = load_profile("raspberry-pi-4")
    assert (pi4.idle_watts, pi4.full_load_watts, pi4.supply_volts) == (2.7, 6.4, 5.1)
    assert pi4.throttle_celsius == 80.0
    assert pi4.off_watts == 0.0
    pi5 = load_profile("raspberry-pi-5")
    assert pi5.max_power_watts > pi4.max_power_watts


def test_unknown_profile_is_a_twin_error() -> None:
    with pytest.raises(TwinError, match="unknown unit profile 'pdp-11'"):
        load_profile("pdp-11")
    with pytest.raises(TwinError, match="invalid profile name"):
        load_profile("../etc")


def test_rack_description_is_validated() -> None:
    assert RackDescription().unit_names() == [f"unit-{i}" for i in range(1, 6)]
    with pytest.raises(ValidationError):
        RackDescription(units=513)
    with pytest.raises(ValidationError):
        RackDescription(units=0)
    with pytest.raises(ValidationError):
        RackDescription(psu_rated_watts=0)


def test_thermal_rises_towards_steady_state_and_throttles_with_hysteresis() -> None:
    model = ThermalModel(25.0, 9.0, 120.0, throttle_celsius=80.0, release_celsius=77.0)
    model.step(6.4, 120.0)  # one time constant: 1 - 1/e of the way to 25 + 6.4 × 9
    assert model.temperature == pytest.approx(25 + 57.6 * (1 - 0.36787944), rel=1e-6)
    assert not model.throttled
    model.step(6.4, 10_000.0)
    assert model.temperature == pytest.approx(82.6)
    assert model.throttled
    model.step(0.0, 1.0)  # cools a little, still above the release point
    assert model.throttled
    model.step(0.0, 10_000.0)
    assert model.temperature == pytest.approx(25.0)
    assert not model.throttled


def test_busbar_counts_brownouts_and_energy() -> None:
    busbar = Busbar(rated_watts=10.0, volts=5.1)
    assert not busbar.settle([4.0, 5.0], 2.0)
    assert busbar.energy_joules == pytest.approx(18.0)
    assert busbar.settle([6.0, 5.0], 1.0)
    assert busbar.brownouts == 1
    assert busbar.power_watts == pytest.approx(11.0)


def test_busbar_keeps_its_peak_and_each_overload_with_the_rating_then() -> None:
    busbar = Busbar(rated_watts=10.0, volts=5.1)
    busbar.settle([4.0, 5.0], 1.0)
    busbar.rated_watts = 6.0  # a brown-out fault lowers what the PSU delivers
    busbar.settle([3.0, 4.0], 1.0)
    busbar.rated_watts = busbar.nominal_watts
    busbar.settle([2.0], 1.0)
    assert busbar.peak_watts == pytest.approx(9.0)
    assert [(s.watts, s.rated_watts) for s in busbar.overloads] == [(7.0, 6.0)]
    assert busbar.nominal_watts == 10.0
