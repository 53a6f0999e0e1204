"""The runtime is fed by the store's watch: an object written straight to the store (not
through the API, nobody calls ``enqueue``) is reconciled at once, on SQLite and on a real
etcd alike; a reconciler's own status write does not wake it again; a compacted history is
listed again."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.controller import Registry, Runtime
from racklet.controller._informer import Informer
from racklet.store import EtcdStore, MemoryStore, SqliteStore, Store
from tests.store.etcd_server import EtcdServer

NEVER = 3600.0  # resync period: nothing in these tests may arrive by resync
DEADLINE = 20.0  # a generous bound for a loaded machine, far under a resync period


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Recorder:
    """Counts reconciles per unit and writes status each time, as a real reconciler does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.generations: dict[str, int] = {}

    async def reconcile(self, name: str) -> float | None:
        self.calls[name] += 1
        unit = await self.store.get(ComputeUnit, name)
        unit.status.observed_generation = unit.metadata.generation
        unit.status.os_version = f"seen {self.calls[name]} times"
        await self.store.update_status(unit)
        self.generations[name] = unit.metadata.generation
        return None


def _unit(name: str) -> ComputeUnit:
    return ComputeUnit(
        metadata=ObjectMeta(name=name),
        spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://bmc.test")),
    )


@pytest.fixture(params=["sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: SqliteStore | EtcdStore
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "store.db")
    else:
        etcd: EtcdServer = request.getfixturevalue("etcd")
        opened = EtcdStore(etcd.url, prefix=f"/informer-{uuid.uuid4().hex}/")
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_store_write_is_reconciled_without_waiting_for_a_resync(store: Store) -> None:
    await store.create(_unit("old"))
    recorder = Recorder(store)
    registry = Registry()
    registry.register(ComputeUnit, recorder)
    runtime = Runtime(registry, store, resync_seconds=NEVER, resync_rate=1.0)
    await runtime.start()
    try:
        await until(lambda: recorder.calls["old"] == 1, "the first list to queue 'old'")
        await store.create(_unit("new"))  # straight to the store: nobody enqueues it
        await until(lambda: recorder.generations.get("new") == 1, "'new' to be reconciled")

        unit = await store.get(ComputeUnit, "new")
        unit.spec.power = "Off"  # a spec change: generation 2
        await store.update(unit)
        await until(lambda: recorder.generations.get("new") == 2, "the spec change")

        unit = await store.get(ComputeUnit, "old")
        unit.metadata.annotations["racklet.dev/note"] = "hello"  # requests ride on annotations
        await store.update(unit)
        await until(lambda: recorder.calls["old"] == 2, "the annotation change")

        # Each reconcile above wrote status; none of those writes queued its unit again. The
        # watch delivers in revision order, so once a later write's reconcile ran, the
        # status writes before it had been seen and dropped.
        await store.create(_unit("marker"))
        await until(lambda: recorder.calls["marker"] == 1, "the marker")
        assert recorder.calls == {"old": 2, "new": 2, "marker": 1}

        await store.delete(ComputeUnit, "new")
        await until(lambda: recorder.calls["new"] == 3, "the deletion to be reconciled")
    finally:
        await runtime.stop()


async def test_an_expired_watch_lists_again_and_reports_only_what_changed() -> None:
    store = MemoryStore(history=4)  # a tiny change log: a lagging watch is soon expired
    for name in ("a", "b", "c"):
        await store.create(_unit(name))
    seen: list[str] = []
    informer = Informer(store, ComputeUnit, seen.append)
    task = asyncio.create_task(informer.run())
    try:
        await informer.synced.wait()
        assert sorted(seen) == ["a", "b", "c"]
        seen.clear()
        # Many writes while the informer cannot run: the log drops what it has not read.
        unit = await store.get(ComputeUnit, "a")
        for step in range(10):
            unit.metadata.labels["step"] = str(step)
            unit = await store.update(unit)
        await store.delete(ComputeUnit, "b")
        await until(lambda: informer.relists >= 1 and "b" in seen, "a re-list")
        assert sorted(set(seen)) == ["a", "b"]  # "c" did not change: not reported again
        assert sorted(informer.names()) == ["a", "c"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_prompt_work_gets_a_freed_slot_before_resync_work() -> None:
    from racklet.controller._runtime import _Slots

    slots = _Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def wait(name: str, background: bool) -> None:
        await slots.acquire(background=background)
        order.append(name)
        slots.release()

    waiters = [asyncio.create_task(wait(f"resync-{i}", True)) for i in range(3)]
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(wait("watched", False)))
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*waiters)
    assert order == ["watched", "resync-0", "resync-1", "resync-2"]
