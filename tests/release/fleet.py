"""A fake unit fleet for rollout tests: units that boot what their channel names when cycled.

It stands in for the unit reconciler plus the hardware side, at the level the rollout sees
them: a power-cycle annotation it has not handled yet makes the unit "reboot" into the
channel's current release (read from the real TUF repository), with the A/B rules the real
boot path follows: a version listed in ``broken`` fails (``BootFailed``), one in ``hangs``
never reaches Running, and a version below the committed one is refused (rollback
protection). Each :meth:`step` handles every pending cycle once: no clocks, no sleeping.
"""

from __future__ import annotations

from racklet.api import POWER_CYCLE_ANNOTATION, BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.boot import TufRepository, version_key
from racklet.store import MemoryStore


class FakeFleet:
    def __init__(self, store: MemoryStore, repo: TufRepository, channel: str = "stable") -> None:
        self.store, self.repo, self.channel = store, repo, channel
        self.committed: dict[str, str] = {}
        self.broken: set[str] = set()
        self.hangs: set[str] = set()
        self.cycles: list[tuple[str, str]] = []  # (unit, version it booted)

    async def add(self, name: str, slot: int, version: str, labels: dict[str, str]) -> None:
        unit = await self.store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name, labels=labels),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url=f"https://127.0.0.1:{slot}")),
            )
        )
        unit.status.phase, unit.status.os_version = "Running", version
        await self.store.update_status(unit)
        self.committed[name] = version

    def current(self) -> str:
        return next(r.version for r in self.repo.list() if r.channel == self.channel and r.current)

    async def step(self) -> None:
        version = self.current()
        for unit in await self.store.list(ComputeUnit):
            request = unit.metadata.annotations.get(POWER_CYCLE_ANNOTATION)
            if not request or request == unit.status.last_power_cycle:
                continue
            name = unit.metadata.name
            unit.status.last_power_cycle = request
            self.cycles.append((name, version))
            if version_key(version) < version_key(self.committed[name]):
                unit.status.phase = "BootFailed"  # rollback protection refuses the release
            elif version in self.broken:
                unit.status.phase = "BootFailed"
            elif version in self.hangs:
                unit.status.phase, unit.status.os_version = "Booting", None
            else:
                self.committed[name] = version
                unit.status.phase, unit.status.os_version = "Running", version
            await self.store.update_status(unit)
