"""The dashboard's one-hour history (``racklet.controller._ui_history``): its memory and cost.

A store with ``--units`` units (every status field set) and the rack, sampled ``--samples``
times on a fake clock (more than the hour's 720 rows, so every ring has wrapped): the rings'
bytes, the Python heap's growth over the whole run (``tracemalloc``: rings, dicts, the rows'
list), the time of one sample (a store list and one row per unit; tracemalloc off), and the
size of what a page asks for (one unit's hour; every unit's and the rack's) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, Rack, RackSpec
from racklet.controller._ui_history import UnitHistory
from racklet.store import MemoryStore


async def _store(units: int) -> MemoryStore:
    store = MemoryStore()
    rack = Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=400))
    await store.create(rack)
    for slot in range(1, units + 1):
        spec = ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1"))
        unit = await store.create(ComputeUnit(metadata=ObjectMeta(name=f"unit-{slot}"), spec=spec))
        s = unit.status
        s.power_watts, s.temperature_celsius, s.cpu_load, s.energy_joules = 2.5, 45.0, 0.3, 1e4
        await store.update_status(unit)
    return store


async def _run(units: int, samples: int) -> None:
    store = await _store(units)
    now = [1.7e9]

    def clock() -> float:
        return now[0]

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    history = UnitHistory(store, "rack-1", clock=clock)
    for _ in range(samples):
        await history.sample()
        now[0] += history.interval
    grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    started = time.perf_counter()
    for _ in range(200):
        await history.sample()
    per_sample = (time.perf_counter() - started) / 200
    one = json.dumps({"units": {"unit-1": history.units["unit-1"].rows()}})
    every = json.dumps(
        {"units": {n: r.rows() for n, r in history.units.items()}, "rack": history.rack.rows()}
    )
    print(
        f"dashboard history, {units} units, {samples} samples every {history.interval:g} s: "
        f"rings {history.nbytes / 1024:.1f} KB ({history.nbytes / units / 1024:.1f} KB a unit),"
        f" heap growth {grown / 1024:.1f} KB; one sample {per_sample * 1e3:.2f} ms; one unit's"
        f" hour {len(one) / 1024:.1f} KB JSON, every unit's and the rack's "
        f"{len(every) / 1024:.1f} KB",
        flush=True,
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard_history")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args(argv)
    asyncio.run(_run(args.units, args.samples))
