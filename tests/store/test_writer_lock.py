"""One writer per SQLite store: its read cache is only right while nobody else writes."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.store import SqliteStore, StoreError

_OPEN = "import sys; from racklet.store import SqliteStore; SqliteStore(sys.argv[1])"


def _unit(name: str) -> ComputeUnit:
    return ComputeUnit(
        metadata=ObjectMeta(name=name),
        spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://127.0.0.1:1")),
    )


async def test_a_second_writer_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = SqliteStore(path)
    await first.create(_unit("unit-1"))
    with pytest.raises(
        StoreError, match=f"already in use by another controller \\(pid {os.getpid()}\\)"
    ):
        SqliteStore(path)
    other = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _OPEN, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode != 0
    assert "already in use by another controller" in other.stderr
    await first.close()
    second = SqliteStore(path)  # the lock went with the first store
    try:
        assert [u.metadata.name for u in await second.list(ComputeUnit)] == ["unit-1"]
    finally:
        await second.close()


async def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        store = SqliteStore(tmp_path / "controller" / "store.db")
        await store.create(_unit("unit-1"))
        await store.close()
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "controller").iterdir()}
    assert modes["store.db"] == 0o600
    assert modes["store.db.lock"] == 0o600
    assert stat.S_IMODE((tmp_path / "controller").stat().st_mode) == 0o700
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
