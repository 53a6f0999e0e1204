"""A refused power-on goes ahead as soon as the busbar budget frees, not at the next resync."""

from __future__ import annotations

import asyncio

from racklet.api import ComputeUnit
from racklet.controller import ComputeUnitReconciler, Registry, Runtime
from tests.controller.harness import make


async def test_units_waiting_for_the_budget_are_woken_in_line_without_a_resync() -> None:
    names = ["unit-1", "unit-2", "unit-3"]
    rated = 10.0  # one unit booting (6 W ceiling) at a time; three once two run at 2 W each
    h = await make(names, rated=rated)
    runtime: Runtime | None = None
    reconciler = ComputeUnitReconciler(
        h.store,
        h.clients,
        h.heartbeats,
        rack_name="rack-1",
        clock=h.clock,
        wake=lambda name: runtime.enqueue("ComputeUnit", name) if runtime else None,
    )
    registry = Registry()
    registry.register(ComputeUnit, reconciler)
    # after the first pass nothing is looked at again by resync within this test: only a
    # heartbeat (as the controller's heartbeat endpoint does) or a wake-up queues a unit
    runtime = Runtime(registry, h.store, resync_seconds=3600.0, resync_rate=1000.0)
    await runtime.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            assert h.worst_case_draw() <= rated  # the promise the budget keeps, at every step
            phases = [(await h.unit(n)).status.phase for n in names]
            if phases == ["Running"] * 3:
                break
            assert loop.time() < deadline, f"stuck waiting for the budget: {phases}"
            for name in h.boot_step():  # heartbeats queue a unit, as the controller's do
                runtime.enqueue("ComputeUnit", name)
            await asyncio.sleep(0.05)
    finally:
        await runtime.stop()
        await h.close()
    ons = sorted(name for name, kind in h.bmc.resets if kind == "On")
    assert ons == names  # each powered on exactly once
    refused = [e for e in await h.store.events() if e.reason == "BusbarBudget"]
    assert refused  # the budget did make units wait
