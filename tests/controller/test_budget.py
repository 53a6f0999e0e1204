"""The busbar budget: the running-total ledger agrees with the list rule, and a large
power-on (500 units, real runtime and reconciler, in-process Redfish fakes) never lets the
rack's worst-case draw exceed the PSU rating at any instant."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import httpx

from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
    Rack,
    RackSpec,
    find_condition,
)
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry, Registry, Runtime
from racklet.controller._budget import Draw, Ledger, projected_watts
from racklet.controller._heartbeats import HeartbeatBody
from racklet.redfish import RedfishClient
from racklet.store import SqliteStore

UNITS = 500  # large enough that the budget holds hundreds back; small enough for CI
CEILING, SETTLED = 7.0, 3.5  # a unit's MaxPowerWatts, and its draw once its OS runs
RATED = UNITS * SETTLED + 25.0  # all fit once settled; booting ones count double
BOOT_SECONDS = 1.0  # simulated: from power-on to the OS running
DEADLINE = 300.0  # a generous bound, not a timing test: CI machines are slow


def test_the_ledger_projects_what_the_list_rule_does() -> None:
    rng = random.Random(5)
    phases = ["Off", "PoweringOn", "Booting", "Running", "BootFailed", "Unreachable"]
    ledger, draws = Ledger(), dict[str, Draw]()
    for _ in range(5000):
        name = f"u{rng.randrange(60)}"
        if rng.random() < 0.1:
            ledger.pop(name)
            draws.pop(name, None)
        else:
            draw = Draw(
                rng.choice(phases),  # type: ignore[arg-type]
                rng.random() < 0.6,
                round(rng.uniform(0, 8), 3),
                rng.choice([None, 6.0, 7.5]),
            )
            ledger.set(name, draw)
            draws[name] = draw
        candidate = rng.choice([5.0, 7.0])
        others = [d for n, d in draws.items() if n != name]
        assert (
            abs(ledger.projected(candidate, excluding=name) - projected_watts(others, candidate))
            < 1e-9
        )


class Fleet:
    """UNITS BMCs behind one mock transport. A powered unit boots for ``BOOT_SECONDS``,
    drawing up to its ceiling; then its OS runs (heartbeats) and it settles. Every power-on
    checks the rack's worst case right after it: that is the budget's promise."""

    def __init__(self, heartbeats: HeartbeatRegistry) -> None:
        self.heartbeats = heartbeats
        self.power: dict[str, str] = {}
        self.booting: dict[str, float] = {}  # unit -> when it was powered on (loop time)
        self.running: set[str] = set()
        self.peak = 0.0
        self.most_booting = 0
        self.violations: list[float] = []

    def worst_case(self) -> float:
        return len(self.booting) * CEILING + len(self.running) * SETTLED

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/Sessions"):
            return httpx.Response(201, json={}, headers={"X-Auth-Token": "t", "Location": path})
        if "/UpdateService/" in path:  # a BMC without OS slots
            return httpx.Response(404, json={"error": {"message": "not found"}})
        name = path.split("/")[4]
        if path.endswith("/Actions/ComputerSystem.Reset"):
            assert json.loads(request.content)["ResetType"] == "On"
            self.power[name] = "On"
            self.booting[name] = asyncio.get_running_loop().time()
            self.most_booting = max(self.most_booting, len(self.booting))
            worst = self.worst_case()
            self.peak = max(self.peak, worst)
            if worst > RATED:
                self.violations.append(worst)
            return httpx.Response(204)
        on = self.power[name] == "On"
        if path.endswith("/EnvironmentMetrics"):
            watts = SETTLED if name in self.running else (1.0 if on else 0.0)
            return httpx.Response(200, json={"PowerWatts": {"Reading": watts}})
        if path.split("/")[3] == "Chassis":
            return httpx.Response(
                200, json={"Id": name, "Status": {"State": "Enabled"}, "MaxPowerWatts": CEILING}
            )
        last = "OSRunning" if name in self.running else "None"
        return httpx.Response(
            200,
            json={
                "Id": name,
                "PowerState": self.power[name],
                "BootProgress": {"LastState": last},
                "Status": {"State": "Enabled", "Health": "OK"},
            },
        )

    async def tick(self, runtime: Runtime) -> None:
        """Boots finish: the OS runs and heartbeats (the machine API then enqueues it);
        running units keep heartbeating."""
        while True:
            await asyncio.sleep(0.05)  # the simulation's step, not a wait in the test
            now = asyncio.get_running_loop().time()
            done = [n for n, since in self.booting.items() if now - since >= BOOT_SECONDS]
            for name in done:
                del self.booting[name]
            self.running.update(done)
            for name in self.running:
                self.heartbeats.record(
                    HeartbeatBody(unit=name, agent_url="https://127.0.0.1:1", os_version="1.0")
                )
            for name in done:
                runtime.enqueue("ComputeUnit", name)


async def test_a_500_unit_power_on_keeps_the_busbar_budget_at_every_instant(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store.db")
    rack = Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=RATED))
    await store.create(rack)
    names = [f"unit-{i:04d}" for i in range(UNITS)]
    heartbeats = HeartbeatRegistry()
    fleet = Fleet(heartbeats)
    for index, name in enumerate(names):
        fleet.power[name] = "Off"
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name),
                spec=ComputeUnitSpec(slot=1 + index % 16, bmc=BmcRef(url="https://bmc.test")),
            )
        )
    transport = httpx.MockTransport(fleet.handle)
    clients = {
        n: RedfishClient(
            "https://bmc.test", "u", "p", ca_bundle=Path("/unused"), transport=transport
        )
        for n in names
    }
    registry = Registry()
    registry.register(
        ComputeUnit, ComputeUnitReconciler(store, clients, heartbeats, rack_name="rack-1")
    )
    # a waiting unit is looked at again by resync: every object every 4 s here
    runtime = Runtime(registry, store, resync_seconds=1.0, resync_rate=UNITS / 4)
    ticker = asyncio.create_task(fleet.tick(runtime))
    await runtime.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while len(fleet.running) < UNITS:
            assert time.monotonic() < deadline, f"only {len(fleet.running)} units running"
            await asyncio.sleep(0.2)
        decided = [
            u.metadata.name
            for u in await store.list(ComputeUnit)
            if (c := find_condition(u.status.conditions, "PowerBudget")) is not None
            and c.reason == "WithinBudget"
            and "projected" in c.message
        ]
        waits = [e for e in await store.events(limit=10 * UNITS) if e.reason == "BusbarBudget"]
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await runtime.stop()
        for client in clients.values():
            await client.aclose()
        await store.close()
    assert fleet.violations == []
    assert len(decided) == UNITS  # each was powered on by a budget decision
    assert waits, "the budget never held a unit back: this test could not have failed"
    print(f"peak worst-case draw {fleet.peak:.1f} W of {RATED:.0f} W, {fleet.most_booting} booting")
