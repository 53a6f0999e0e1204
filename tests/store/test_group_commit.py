"""SQLite group commit: many writes share one fsync, yet each keeps its own check and error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.store import AlreadyExists, Conflict, SqliteStore, StoreError
from tests.store.test_crash import kill_writer_after


def unit(name: str) -> ComputeUnit:
    return ComputeUnit(
        metadata=ObjectMeta(name=name),
        spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://127.0.0.1:1")),
    )


async def test_concurrent_writes_share_transactions(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        created = await asyncio.gather(*(store.create(unit(f"unit-{i}")) for i in range(200)))
        versions = sorted(int(u.metadata.resource_version) for u in created)
        assert versions == list(range(1, 201))  # every write got its own version
        assert len(await store.list(ComputeUnit)) == 200
        assert store.commits < 50  # ...but far fewer fsyncs than writes
    finally:
        await store.close()


async def test_a_conflict_fails_only_its_own_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    try:
        units = [await store.create(unit(f"unit-{i}")) for i in range(10)]
        stale = {3, 7}
        for index in stale:  # someone else writes first: our copies of 3 and 7 go stale
            fresh = await store.get(ComputeUnit, f"unit-{index}")
            fresh.spec.slot = 9
            await store.update(fresh)
        before = int((await store.list_with_revision(ComputeUnit))[1])
        changes = store.watch(ComputeUnit, before)
        assert (await anext(changes)).type == "BOOKMARK"
        for u in units:
            u.spec.power = "Off"
        results = await asyncio.gather(
            *(store.update(u) for u in units),
            store.create(unit("unit-0")),  # a taken name, in the same batch
            return_exceptions=True,
        )
        for index, result in enumerate(results[:10]):
            if index in stale:
                assert isinstance(result, Conflict), result
            else:
                assert isinstance(result, ComputeUnit), result
        assert isinstance(results[10], AlreadyExists)
        stored = {u.metadata.name: u for u in await store.list(ComputeUnit)}
        assert [n for n, u in sorted(stored.items()) if u.spec.power == "On"] == [
            "unit-3",
            "unit-7",
        ]
        # the failed writes' version bumps were rolled back: eight writes, eight versions
        assert (await store.list_with_revision(ComputeUnit))[1] == before + 8
        seen = [await anext(changes) for _ in range(8)]
        assert [c.revision for c in seen] == list(range(before + 1, before + 9))
        assert {c.object.metadata.name for c in seen if c.object} == {
            f"unit-{i}" for i in range(10) if i not in stale
        }
        await changes.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()
    reopened = SqliteStore(path)
    try:
        assert (await reopened.get(ComputeUnit, "unit-5")).spec.power == "Off"
    finally:
        await reopened.close()


async def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    pending = asyncio.ensure_future(store.create(unit("unit-1")))
    await asyncio.sleep(0)  # queued before close: it still commits
    await store.close()
    assert (await pending).metadata.name == "unit-1"
    with pytest.raises(StoreError, match=r"^the store is closed$") as refused:
        await store.create(unit("unit-2"))
    assert type(refused.value) is StoreError  # not NotFound, Conflict, ...: the store said no
    reopened = SqliteStore(tmp_path / "s.db")
    try:  # the refused write left nothing behind; the queued one is there
        assert [u.metadata.name for u in await reopened.list(ComputeUnit)] == ["unit-1"]
    finally:
        await reopened.close()


def test_grouped_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    # 32 writers: when the kill lands, a whole batch is in flight.
    kill_writer_after("tests.store.batch_writer", tmp_path / "store.db", 500)
