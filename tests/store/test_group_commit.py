"""SQLite group commit: many writes share one fsync, yet each keeps its own check and error."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.store import AlreadyExists, Conflict, SqliteStore

ROOT = Path(__file__).resolve().parents[2]


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
    with pytest.raises(Exception, match="closed"):
        await store.create(unit("unit-2"))


def test_grouped_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.store.batch_writer", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: dict[str, str] = {}
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            _, name, version = line.split()
            acked[name] = version
            if len(acked) == 500:
                os.kill(writer.pid, signal.SIGKILL)  # 32 writers: a batch is in flight
                break
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    stored = asyncio.run(_read(path))
    missing = sorted(set(acked) - set(stored))
    assert not missing, f"acknowledged but lost: {missing[:5]}"
    assert all(stored[name] == version for name, version in acked.items())


async def _read(path: Path) -> dict[str, str]:
    store = SqliteStore(path)
    try:
        return {u.metadata.name: u.metadata.resource_version for u in await store.list(ComputeUnit)}
    finally:
        await store.close()
