"""An acknowledged write survives ``kill -9`` of the process that made it (SQLite, WAL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from racklet.api import ComputeUnit
from racklet.store import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


def kill_writer_after(module: str, path: Path, count: int) -> tuple[dict[str, str], dict[str, str]]:
    """Run a writer process, SIGKILL it after ``count`` acknowledged writes; return what it
    acknowledged and what the store holds afterwards (name -> resourceVersion)."""
    writer = subprocess.Popen(
        [sys.executable, "-m", module, str(path)],
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
            if len(acked) == count:
                os.kill(writer.pid, signal.SIGKILL)  # mid-stream: writes are still in flight
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
    return acked, stored


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    acked, stored = kill_writer_after("tests.store.writer", tmp_path / "store.db", 200)
    assert len(stored) >= len(acked)  # maybe one more, committed but not yet printed


async def _read(path: Path) -> dict[str, str]:
    store = SqliteStore(path)
    try:
        return {u.metadata.name: u.metadata.resource_version for u in await store.list(ComputeUnit)}
    finally:
        await store.close()
