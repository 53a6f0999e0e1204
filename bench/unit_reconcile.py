"""The unit reconciler's own cost: CPU per reconcile, one unit after another.

``control_plane_scale`` measures the whole runtime in wall time, which a loaded machine
swamps. This one runs the real :class:`ComputeUnitReconciler` over N units sequentially
(the same in-process Redfish fakes, a SQLite store): a power-on pass, then ``--passes``
steady passes, and prints process CPU microseconds per reconcile for each. For a figure no
neighbour can disturb, run it under ``valgrind --tool=callgrind`` with ``--passes 0`` and
``--passes 3`` and divide the difference in instructions by ``3 * units``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.control_plane_scale import FakeFleet
from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, Rack, RackSpec
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry
from racklet.redfish import RedfishClient
from racklet.store import SqliteStore

WARM = 20  # reconciled before measuring: connection set-up and first-call costs


async def run(units: int, passes: int, directory: Path) -> list[float]:
    store = SqliteStore(directory / "store.db")
    fleet = FakeFleet()
    transport = httpx.MockTransport(fleet.handle)
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=1e9)))
    names = [f"unit-{i:05d}" for i in range(units)]
    for index, name in enumerate(names):
        fleet.power[name] = "Off"
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name),
                spec=ComputeUnitSpec(slot=1 + index % 16, bmc=BmcRef(url="https://bmc.test")),
            )
        )
    clients = {
        name: RedfishClient(
            "https://bmc.test", "u", "p", ca_bundle=Path("/unused"), transport=transport
        )
        for name in names
    }
    reconciler = ComputeUnitReconciler(store, clients, HeartbeatRegistry(), rack_name="rack-1")
    costs: list[float] = []
    try:
        for name in names[:WARM]:
            await reconciler.reconcile(name)
        for _ in range(passes):
            started = time.process_time()
            for name in names:
                await reconciler.reconcile(name)
            costs.append((time.process_time() - started) / units * 1e6)
    finally:
        for client in clients.values():
            await client.aclose()
        await store.close()
    return costs


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench unit_reconcile")
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=4, help="the first powers every unit on")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        costs = asyncio.run(run(args.units, args.passes, Path(directory)))
    shown = " ".join(f"{cost:.0f}" for cost in costs)
    print(
        f"unit_reconcile: {args.units} units, CPU per reconcile (µs), power-on pass then "
        f"steady passes: {shown or '-'}"
    )
