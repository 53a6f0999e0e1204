"""Load shedding: a shrinking busbar budget switches off the lowest-priority units first,
with events saying who and why, and they come back through admission when it returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
    Rack,
    RackSpec,
    find_condition,
)
from racklet.controller._phase import Observation
from racklet.controller._shedding import Candidate, plan, victims
from racklet.controller.reconcilers._admission import PATIENCE_SECONDS, BusbarAdmission
from racklet.redfish import ChassisView, EnvironmentView, PowerLimitView, SystemView
from racklet.store import MemoryStore
from tests.controller.harness import FakeClock, Harness, make

UNITS = ["unit-1", "unit-2", "unit-3", "unit-4"]
PRIORITIES = {"unit-1": 500, "unit-2": 10, "unit-3": 300, "unit-4": 10}


def test_the_line_is_lowest_priority_first_then_highest_slot() -> None:
    powered = [
        Candidate("a", 100, 1, 3.0),
        Candidate("b", 5, 2, 3.0),
        Candidate("c", 5, 4, 3.0),
        Candidate("d", 900, 3, 3.0),
    ]
    assert victims(powered, 12.0) == []
    assert victims(powered, 7.0) == ["c", "b"]
    assert victims(powered, 0.5) == ["c", "b", "a", "d"]


def _pi(name: str, priority: int, slot: int, watts: float, **kw: object) -> Candidate:
    """A Pi 4-like unit: its cap ranges from 3.8 W (its floor) to 6.4 W."""
    return Candidate(name, priority, slot, watts, floor=3.8, ceiling=6.4, **kw)  # type: ignore[arg-type]


def test_capping_holds_the_lowest_priority_down_first_and_sheds_only_when_floors_do_not_fit() -> (
    None
):
    busy = [_pi("high", 300, 1, 6.4), _pi("mid", 200, 2, 6.4), _pi("low", 100, 3, 6.4)]
    assert plan(busy, 20.0).caps == {} and plan(busy, 20.0).shed == []  # 19.2 W fits
    # 19.2 W asked of 16 W (14.4 W after the guard): low to its floor, mid as far as needed
    capped = plan(busy, 16.0)
    assert capped.shed == [] and capped.demand == pytest.approx(19.2)
    assert capped.caps == {"low": 3.8, "mid": pytest.approx(14.4 - 6.4 - 3.8)}
    # 10 W (9 W after the guard): three floors (11.4 W) do not fit, so low goes; the rest capped
    shed = plan(busy, 10.0)
    assert shed.shed == ["low"]
    assert shed.caps == {"mid": 3.8, "high": pytest.approx(9.0 - 3.8)}
    # a unit without a cap (its BMC has none) can only be shed
    plain = [Candidate("old", 50, 4, 6.0), *busy]
    assert plan(plain, 22.0).shed == [], "the others are capped instead"
    assert plan(plain, 16.0).shed == ["old"], "its 6 W cannot be capped: it goes first"


def test_a_held_back_unit_counts_at_its_ceiling_so_caps_lift_only_when_that_fits() -> None:
    held = [
        _pi("high", 300, 1, 6.4),
        _pi("mid", 200, 2, 3.3, limit=3.3),  # pressing against its cap
        _pi("low", 100, 3, 3.8, limit=3.8),
    ]
    assert plan(held, 16.0).caps == {"low": 3.8, "mid": pytest.approx(14.4 - 6.4 - 3.8)}
    assert plan(held, 100.0).caps == {}, "the budget is back: every cap comes off"
    idle = [_pi("a", 100, 1, 2.8, limit=3.8), _pi("b", 100, 2, 2.8)]  # wants less than its cap
    assert plan(idle, 8.0).caps == {}
    # the busbar sags: every unit is held at its floor, and its demand is hidden
    sagging = [_pi(n, 100, i, 3.8, overridden=True) for i, n in enumerate(("a", "b", "c"), 1)]
    assert plan(sagging, 13.0).demand == 3 * 6.4
    assert plan(sagging, 13.0).caps, "a sag is capped even though the meters fit"


def test_unsettled_readings_tighten_caps_but_never_raise_or_lift_them() -> None:
    # Looks taken as the sag ended: high and mid still read at the floor it held them to.
    stale = [
        _pi("high", 300, 1, 3.8),
        _pi("mid", 200, 2, 3.8, limit=4.2),  # below its cap: taken to want no more
        _pi("low", 100, 3, 3.8, limit=3.8),
    ]
    assert plan(stale, 16.0).caps == {}, "on their face the readings fit 14.4 W"
    held = plan(stale, 16.0, settled=False)
    assert held.caps == {"mid": 4.2, "low": 3.8} and held.held == {"mid", "low"}
    # Tightening waits for nothing: a lower budget caps further at once.
    fresh = [_pi("high", 300, 1, 6.4), _pi("mid", 200, 2, 4.2, limit=4.2), stale[2]]
    tighter = plan(fresh, 14.0, settled=False)
    assert tighter.caps == {"low": 3.8, "mid": 3.8, "high": pytest.approx(5.0)}
    assert tighter.held == frozenset()


async def settle(h: Harness, rounds: int = 8) -> None:
    """Reconcile every unit and let the fake boards boot, past every action cool-down."""
    for _ in range(rounds):
        for name, unit in h.bmc.units.items():
            if unit.power_state == "On" and unit.last_state == "OSRunning":
                h.heartbeat(name)  # a running OS keeps heartbeating
        await h.reconcile(*UNITS)
        h.boot_step()
        h.clock.now += 11


async def phases(h: Harness) -> set[str]:
    return {(await h.unit(name)).status.phase for name in UNITS}


async def set_budget(h: Harness, watts: float) -> None:
    rack = await h.store.get(Rack, "rack-1")
    rack.spec.psu_rated_watts = watts
    await h.store.update(rack)


async def test_a_lower_budget_sheds_the_lowest_priority_and_restores_them() -> None:
    h = await make(UNITS, rated=100.0)
    try:
        for name, priority in PRIORITIES.items():
            unit = await h.unit(name)
            unit.spec.power_priority = priority
            await h.store.update(unit)
        await settle(h)
        assert await phases(h) == {"Running"}
        drawn = sum(u.power_watts for u in h.bmc.units.values() if u.power_state == "On")
        assert drawn == 8.0  # four units at 2 W

        await set_budget(h, 5.0)  # below the running draw
        await h.reconcile(*UNITS)
        on = {n for n, u in h.bmc.units.items() if u.power_state == "On"}
        assert on == {"unit-1", "unit-3"}, "the two priority-10 units go, the others stay"
        assert sum(h.bmc.units[n].power_watts for n in on) <= 5.0, "within the new budget"
        for name in ("unit-2", "unit-4"):
            shed = [e for e in await h.store.events(name) if e.reason == "Shed"]
            assert len(shed) == 1 and shed[0].type == "Warning"
            # the first one shed sees 8 W, the second what is left after it: 6 W
            assert re.search(r"drew [86]\.00 W of a 5\.00 W budget", shed[0].message)
            assert "priority 10" in shed[0].message
            budget = find_condition((await h.unit(name)).status.conditions, "PowerBudget")
            assert budget is not None and budget.reason == "Shed"

        await settle(h, 3)  # still short: they wait in line, nothing else is shed
        assert {n for n, u in h.bmc.units.items() if u.power_state == "On"} == on
        for name in ("unit-2", "unit-4"):
            budget = find_condition((await h.unit(name)).status.conditions, "PowerBudget")
            assert budget is not None and budget.reason == "BusbarBudget"

        await set_budget(h, 100.0)  # the budget returns
        await settle(h)
        assert await phases(h) == {"Running"}
        assert all(h.bmc.units[n].power_state == "On" for n in UNITS)
    finally:
        await h.close()


async def test_a_budget_below_one_units_idle_draw_sheds_all_and_refuses_power_on() -> None:
    h = await make(UNITS, rated=100.0)
    try:
        await settle(h)
        await set_budget(h, 1.0)
        await settle(h, 3)
        assert all(u.power_state == "Off" for u in h.bmc.units.values())
        for name in UNITS:
            budget = find_condition((await h.unit(name)).status.conditions, "PowerBudget")
            assert budget is not None and budget.status == "False"
    finally:
        await h.close()


# -- hysteresis: caps hold while the meters lag ----------------------------------------------

IDLE, FULL, FLOOR = 2.7, 6.4, 2.7 + (6.4 - 2.7) * 0.3  # a Pi 4 with every core busy


@dataclass
class LaggingRack:
    """Three busy Pi 4s on a busbar, by the twin's rules (a cap holds the draw down to the
    floor; a demand above the rating sags every unit to its floor), whose BMCs read each draw
    one look late: what a meter shows is what the unit drew at the previous look."""

    rated: float
    caps: dict[str, float | None] = field(default_factory=dict)
    shown: dict[str, float] = field(default_factory=dict)
    sagging: bool = False

    def true_draws(self) -> dict[str, float]:
        capped = {
            name: FULL if cap is None else max(FLOOR, min(FULL, cap))
            for name, cap in self.caps.items()
        }
        self.sagging = sum(capped.values()) > self.rated
        return {name: FLOOR for name in capped} if self.sagging else capped

    def look(self, name: str, now: dict[str, float]) -> Observation:
        reading = self.shown.get(name, now[name])
        self.shown[name] = now[name]
        limit = PowerLimitView(self.caps[name], FLOOR, FULL, overridden=self.sagging)
        return Observation(
            chassis=ChassisView(state="Enabled", max_power_watts=FULL),
            system=SystemView("On", "OSRunning", None, "Enabled", "OK", ()),
            environment=EnvironmentView(reading, None, None, limit),
        )


async def test_caps_do_not_flap_while_the_meters_lag_the_loads() -> None:
    """A brown-out to 16 W under three busy units: the caps go on once and stay on while it
    lasts, although each meter still shows the sagged draw of a moment ago (the controller
    once lifted unit-2's cap on such a stale look and set it again: two Capped, an Uncapped
    that said the rack "fits 16 W", and a new sag); they come off when the budget returns."""
    store = MemoryStore()
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=16)))
    units = {"unit-1": 300, "unit-2": 200, "unit-3": 100}
    for slot, (name, priority) in enumerate(units.items(), start=1):
        spec = ComputeUnitSpec(
            slot=slot, bmc=BmcRef(url="https://bmc.test"), powerPriority=priority
        )
        await store.create(ComputeUnit(metadata=ObjectMeta(name=name), spec=spec))
    clock = FakeClock()
    admission = BusbarAdmission(store, "rack-1", member=lambda _: True, clock=clock)
    rack = LaggingRack(16.0, caps=dict.fromkeys(units))
    before = LaggingRack(100.0, caps=dict.fromkeys(units))
    draws = before.true_draws()
    for name in units:  # the last looks before the brown-out: every unit at full power
        before.look(name, draws)
        rack.shown[name] = draws[name]
        admission.note(name, "Running", before.look(name, draws))
    assert not admission.watching()  # no plan in play: an idle unit's heartbeats bring no look

    async def power_off() -> None:
        raise AssertionError("three floors fit 16 W: nothing is shed")

    verdicts: dict[str, list[str]] = {name: [] for name in units}
    messages: list[str] = []

    async def looks(rounds: int) -> int:
        """Look at every unit every half second, in alternating orders (the stalest ledger
        for one of them each time); apply each verdict as its BMC would. Returns the sags."""
        sags = 0
        for round_ in range(rounds):
            clock.now += 0.5
            draws = rack.true_draws()
            sags += rack.sagging
            for name in ("unit-3", "unit-2", "unit-1") if round_ % 2 else tuple(units):
                admission.note(name, "Running", rack.look(name, draws))
                verdict = await admission.govern(await store.get(ComputeUnit, name), power_off)
                if verdict is None or verdict.action == "hold":
                    continue
                verdicts[name].append("move" if verdict.adjusted else verdict.action)
                messages.append(verdict.message)
                rack.caps[name] = verdict.watts
                draws = rack.true_draws()
        return sags

    assert await looks(40) == 1, "the caps end the sag, and it does not come back"
    assert verdicts["unit-1"] == [], "the highest priority keeps its full power"
    for name in ("unit-2", "unit-3"):
        assert "uncap" not in verdicts[name], f"{name}'s cap was lifted during the brown-out"
        assert verdicts[name].count("cap") == 1, verdicts[name]
    assert rack.caps["unit-3"] == pytest.approx(FLOOR)
    assert rack.caps["unit-2"] == pytest.approx(16.0 * 0.9 - FULL - FLOOR)
    assert admission.watching()  # caps held: every heartbeat brings a look, every reading counts

    rack.rated = 100.0  # the brown-out clears
    (budget := await store.get(Rack, "rack-1")).spec.psu_rated_watts = 100.0
    await store.update(budget)
    await looks(10)
    assert rack.caps == dict.fromkeys(units), "every cap lifted once the budget returned"
    assert verdicts["unit-2"][-1] == verdicts["unit-3"][-1] == "uncap"
    assert messages[-1] == (
        "cap lifted: no longer needed: the rack asks 19.20 W, within 90.00 W of a 100.00 W "
        "budget (its guard band kept)"
    )
    clock.now += PATIENCE_SECONDS
    assert not admission.watching()
