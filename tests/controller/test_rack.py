"""A rack counts only its own units: in its status and in its busbar budget."""

from __future__ import annotations

from racklet.api import (
    RACK_LABEL,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ComputeUnitStatus,
    ObjectMeta,
    Rack,
    RackSpec,
    find_condition,
)
from racklet.controller import ComputeUnitReconciler, RackReconciler
from racklet.store import MemoryStore
from tests.controller.harness import make


def _unit(name: str, slot: int, rack: str | None, watts: float, phase: str) -> ComputeUnit:
    labels = {RACK_LABEL: rack} if rack else {}
    return ComputeUnit(
        metadata=ObjectMeta(name=name, labels=labels),
        spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://bmc.test")),
        status=ComputeUnitStatus(
            phase=phase,  # type: ignore[arg-type]
            power_state="On",
            power_watts=watts,
            energy_joules=100.0 * slot,
        ),
    )


async def test_a_second_rack_counts_none_of_the_first_racks_units() -> None:
    store = MemoryStore()
    try:
        await store.create(
            Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=60))
        )
        await store.create(
            Rack(metadata=ObjectMeta(name="rack-2"), spec=RackSpec(psu_rated_watts=80))
        )
        await store.create(_unit("unit-1", 1, "rack-1", 3.0, "Running"))
        await store.create(_unit("unit-2", 2, None, 2.5, "Running"))  # the controller's rack
        await store.create(_unit("unit-3", 3, "rack-3", 9.0, "Running"))  # another rack's
        reconciler = RackReconciler(store, rack_name="rack-1")
        await reconciler.reconcile("rack-1")
        await reconciler.reconcile("rack-2")

        first = (await store.get(Rack, "rack-1")).status
        assert (first.units_running, first.power_watts, first.energy_joules) == (2, 5.5, 300.0)
        second = (await store.get(Rack, "rack-2")).status
        assert (second.units_running, second.power_watts, second.energy_joules) == (0, 0.0, 0.0)
        budget = find_condition(second.conditions, "WithinBudget")
        assert budget is not None and budget.message == "drawing 0.00 W of 80.00 W rated"
    finally:
        await store.close()


async def test_another_racks_units_do_not_take_this_racks_busbar_budget() -> None:
    h = await make(["unit-1"], rated=10.0)  # unit-1 needs its 6 W ceiling to power on
    try:
        # 8 W drawn in another rack, known only from its status (this controller has no BMC
        # for it): counted in rack-1's budget, it would hold unit-1 back
        await h.store.create(_unit("unit-9", 9, "rack-2", 8.0, "Running"))
        await h.reconcile("unit-1")
        assert h.bmc.resets == [("unit-1", "On")]
        power = find_condition((await h.unit("unit-1")).status.conditions, "PowerBudget")
        assert power is not None and power.reason == "WithinBudget"
        assert power.message == "projected 6.00 W of 10.00 W rated"
    finally:
        await h.close()


async def test_a_deleted_unit_frees_its_budget_for_the_next_in_line() -> None:
    woken: list[str] = []  # what the runtime's enqueue would receive
    h = await make(["unit-1", "unit-2"], rated=10.0)  # one 6 W ceiling at a time
    reconciler = ComputeUnitReconciler(
        h.store, h.clients, h.heartbeats, rack_name="rack-1", clock=h.clock, wake=woken.append
    )
    try:
        await reconciler.reconcile("unit-1")
        await reconciler.reconcile("unit-2")
        assert h.bmc.resets == [("unit-1", "On")]  # unit-2 waits in line
        await h.store.delete(ComputeUnit, "unit-1")
        await reconciler.reconcile("unit-1")  # the runtime reconciles a deleted object once more
        assert woken[-1:] == ["unit-2"]
        await reconciler.reconcile("unit-2")
        assert h.bmc.resets == [("unit-1", "On"), ("unit-2", "On")]
    finally:
        await h.close()


async def test_a_unit_still_shutting_down_keeps_its_draw_in_the_budget() -> None:
    h = await make(["unit-1", "unit-2"], rated=10.0)  # unit-2 needs its 6 W ceiling
    try:
        h.bmc.power_on("unit-1")
        h.bmc.units["unit-1"].last_state, h.bmc.units["unit-1"].power_watts = "OSRunning", 5.0
        for name in ("unit-1", "unit-2"):
            unit = await h.unit(name)
            unit.spec.power = "Off"
            await h.store.update(unit)
        h.bmc.defer_resets = True
        await h.reconcile("unit-1", "unit-2")
        assert [r[:2] for r in h.bmc.received] == [("unit-1", "GracefulShutdown")]
        h.bmc.units["unit-1"].power_state = "PoweringOff"  # halting, still drawing 5 W
        await h.reconcile("unit-1")
        unit = await h.unit("unit-2")
        unit.spec.power = "On"
        await h.store.update(unit)
        await h.reconcile("unit-2")
        asked = [r[:2] for r in h.bmc.received]
        assert ("unit-2", "On") not in asked  # 5 W + 6 W would exceed the 10 W rating
        h.bmc.power_off("unit-1")
        await h.reconcile("unit-1")  # off: its draw is gone
        await h.reconcile("unit-2")
        assert [r[:2] for r in h.bmc.received][-1] == ("unit-2", "On")
    finally:
        await h.close()
