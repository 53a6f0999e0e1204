"""A unit's power cap and the busbar's sag: the firmware holds the draw down by its clocks.

A cap set through the board (what the BMC's ``Controls/PowerLimit`` does) clamps the load
so the true draw stays at or under it, never below the profile's floor; a demand above the
PSU's rating throttles every unit to its floor in the same step (under-voltage), so the
busbar's true draw stays within the rating whenever the floors fit, and browns out only when
they do not.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from racklet.hw import Activity
from racklet.twin import TwinRack

MakeRack = Callable[..., TwinRack]


def _running(rack: TwinRack, load: float) -> None:
    for unit in rack.units.values():
        unit.power_on()
        unit.set_activity(Activity.RUNNING)
        unit.set_load(load)


async def test_a_cap_holds_the_true_draw_at_or_under_it_down_to_the_floor(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=1)
    _running(rack, 1.0)
    unit, limiter = rack.unit("unit-1"), rack.board("unit-1").power_limiter
    assert limiter is not None
    assert unit.power_watts == pytest.approx(unit.full_load_watts) and not unit.limiting

    limiter.set_limit_watts(4.5)
    assert unit.power_watts == pytest.approx(4.5) and unit.limiting
    assert limiter.limit_watts() == 4.5

    unit.set_load(0.05)  # it wants less than its cap: nothing held back
    assert unit.power_watts < 4.5 and not unit.limiting

    floor = limiter.floor_watts()
    assert unit.idle_watts < floor < unit.full_load_watts
    with pytest.raises(ValueError, match="below the floor"):
        limiter.set_limit_watts(floor - 0.1)
    assert limiter.limit_watts() == 4.5, "a refused cap leaves the one in force"

    unit.set_load(1.0)
    limiter.set_limit_watts(None)
    assert unit.power_watts == pytest.approx(unit.full_load_watts) and not unit.limiting


async def test_a_sag_throttles_every_unit_and_the_busbar_stays_within_its_rating(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=5, psu_rated_watts=21.0)  # 5 × 6.4 W wanted; floors 5 × 3.8 W + fans
    _running(rack, 1.0)
    for _ in range(50):
        rack.step(0.1)
    assert rack.busbar.brownouts == 0 and rack.busbar.sags == 50
    assert rack.busbar.peak_over_watts <= 0.0, "the true draw never stood above the rating"
    assert all(watts <= rated for _, watts, rated in rack.busbar.samples)
    assert all(unit.limiting and unit.under_voltage for unit in rack.units.values())

    rack.busbar.rated_watts = 100.0  # the supply returns: full clocks at the next step
    rack.step(0.1)
    assert not any(unit.under_voltage for unit in rack.units.values())
    fans = sum(fan.power_watts for fan in rack.rack_fans)
    assert rack.busbar.power_watts == pytest.approx(
        fans + sum(unit.full_load_watts for unit in rack.units.values()), rel=0.01
    )


async def test_caps_that_fit_the_rating_end_the_sag(make_rack: MakeRack) -> None:
    rack = make_rack(units=3, psu_rated_watts=16.0)
    _running(rack, 1.0)
    rack.step(0.1)
    assert rack.busbar.sags == 1
    for name in ("unit-2", "unit-3"):  # what a controller does: cap the lowest priorities
        limiter = rack.board(name).power_limiter
        assert limiter is not None
        limiter.set_limit_watts(limiter.floor_watts())
    rack.step(0.1)
    assert rack.busbar.sags == 1, "no more sag: the capped demand fits"
    assert not rack.unit("unit-1").limiting
    assert rack.busbar.power_watts <= 16.0
