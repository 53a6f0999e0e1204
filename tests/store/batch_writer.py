"""A store writer for the group-commit crash test: 32 concurrent create loops, printing acks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.store import SqliteStore


async def writer(store: SqliteStore, lane: int) -> None:
    index = 0
    while True:
        index += 1
        unit = ComputeUnit(
            metadata=ObjectMeta(name=f"unit-{lane}-{index}"),
            spec=ComputeUnitSpec(slot=1 + index % 16, bmc=BmcRef(url="https://127.0.0.1:1")),
        )
        stored = await store.create(unit)
        print(f"ACK {stored.metadata.name} {stored.metadata.resource_version}", flush=True)


async def main(path: Path) -> None:
    store = SqliteStore(path)
    await asyncio.gather(*(writer(store, lane) for lane in range(32)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
