"""Resync at scale: everything at start, then spread over a period that grows with the fleet."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from racklet.api import GitSource, GitSourceSpec, ObjectMeta
from racklet.controller import Registry, Runtime
from racklet.store import MemoryStore


class Recorder:
    """Records when each object was reconciled (event-loop time)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    async def reconcile(self, name: str) -> float | None:
        self.calls.append((name, asyncio.get_running_loop().time()))
        return None


def test_the_resync_period_grows_with_the_fleet() -> None:
    runtime = Runtime(Registry(), MemoryStore(), resync_seconds=1.0, resync_rate=50.0)
    assert runtime.resync_period(5) == 1.0  # a small rack keeps its quick resync
    assert runtime.resync_period(10_000) == 200.0  # 10,000 units: at most 50 reconciles/s
    with pytest.raises(ValueError):
        Runtime(Registry(), MemoryStore(), resync_rate=0)


async def test_first_pass_at_once_later_passes_spread_over_the_period() -> None:
    store = MemoryStore()
    names = [f"src-{i}" for i in range(10)]
    for name in names:
        await store.create(
            GitSource(metadata=ObjectMeta(name=name), spec=GitSourceSpec(url="file:///x"))
        )
    recorder = Recorder()
    registry = Registry()
    registry.register(GitSource, recorder)
    period, tick = 0.5, 0.1
    runtime = Runtime(registry, store, resync_seconds=period, resync_rate=1000.0, resync_tick=tick)
    await runtime.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len({n for n, _ in recorder.calls[len(names) :]}) < len(names):
            assert loop.time() < deadline, "the second resync pass did not happen"
            await asyncio.sleep(0.01)
    finally:
        await runtime.stop()
        await store.close()
    first = [n for n, _ in recorder.calls[: len(names)]]
    assert sorted(first) == names  # the start: every object once, before any repeat
    again: dict[str, float] = {}
    for name, at in recorder.calls[len(names) :]:
        again.setdefault(name, at)
    # the next pass is spread over the period, not one burst (a lower bound only: a slow
    # machine can stretch it, never shrink it) ...
    assert max(again.values()) - min(again.values()) >= 0.6 * period
    # ... in batches of the objects due within one tick (two here), not ten lone wake-ups
    times = sorted(again.values())
    wakeups = 1 + sum(1 for a, b in itertools.pairwise(times) if b - a > tick / 2)
    assert wakeups <= len(names) // 2
