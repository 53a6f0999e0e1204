"""The unit-OS target: a unit is updated by power-cycling it into its channel's release.

The channel's signed ``current.json`` names the release (the engine moves it); a power cycle
makes the unit's bootstrap fetch it, try-boot it in the inactive A/B slot and commit it after
its health check. The cycle is asked through the unit's power-cycle annotation, whose value
is the rollout's request id; the unit reconciler carries it out once (recorded as pending
before the reset, sent with ``Idempotency-Key``) and reports it in ``status.lastPowerCycle``.

A unit is ``Updated`` when, after its cycle, it is Running with ``status.osVersion`` equal to
the release; ``Failed`` when it reports BootFailed after its cycle or is gone; available when
it is Running. Taking a unit back is the same cycle while the channel names the old release.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from racklet.api import POWER_CYCLE_ANNOTATION, ChannelPointer, ComputeUnit, Release, UnitRollout
from racklet.controller.errors import TemporaryError
from racklet.controller.reconcilers._release import SignedFile
from racklet.controller.rollout._target import StepVerdict
from racklet.store import Conflict, NotFound, Store

PAYLOAD = "payload.bin"
_WRITE_ATTEMPTS = 5
_GONE = "the unit is gone"


class UnitOsTarget:
    """Power-cycles units into a release through the store (the unit reconciler acts)."""

    noun = "unit"

    def __init__(self, store: Store, enqueue: Callable[[str, str], None]) -> None:
        self._store = store
        self._enqueue = enqueue

    def admit(
        self, release: Release, signed: Sequence[SignedFile], names: Sequence[str]
    ) -> tuple[str, str] | None:
        if PAYLOAD not in {f.name for f in signed}:
            return "NotBootable", f"release {release.metadata.name} has no {PAYLOAD}"
        return None

    async def observe(self, entries: Sequence[UnitRollout]) -> Mapping[str, ComputeUnit]:
        wanted = {e.name for e in entries}
        return {
            u.metadata.name: u
            for u in await self._store.list(ComputeUnit)
            if u.metadata.name in wanted
        }

    def runs(self, seen: ComputeUnit | None, version: str) -> bool:
        return seen is not None and _runs(seen, version)

    def available(self, seen: ComputeUnit | None) -> bool:
        # a unit deleted since the rollout began is not "down": it fails when its turn comes
        return seen is None or seen.status.phase == "Running"

    async def start(
        self, entry: UnitRollout, release: Release, seen: ComputeUnit | None, *, again: bool
    ) -> str | None:
        return await self._ask(entry, seen, again=again)

    def judge(self, entry: UnitRollout, seen: ComputeUnit | None, version: str) -> StepVerdict:
        if seen is None:
            return StepVerdict("Failed", _GONE)
        cycled = seen.status.last_power_cycle == entry.request
        if cycled and _runs(seen, version):
            return StepVerdict("Done", f"Running {version}")
        if cycled and seen.status.phase == "BootFailed":
            return StepVerdict("Failed", "BootFailed after its power cycle")
        running = seen.status.os_version or "no version"
        return StepVerdict(
            "Waiting", f"not Running {version}", f"phase {seen.status.phase}, {running}"
        )

    async def roll_back(
        self,
        entry: UnitRollout,
        previous: ChannelPointer,
        seen: ComputeUnit | None,
        *,
        again: bool,
    ) -> None:
        await self._ask(entry, seen, again=again)  # a gone unit misses its deadline

    def judge_back(
        self, entry: UnitRollout, seen: ComputeUnit | None, previous: ChannelPointer, version: str
    ) -> StepVerdict:
        if (
            seen is not None
            and seen.status.last_power_cycle == entry.request
            and _runs(seen, previous.version)
        ):
            return StepVerdict("Done", f"Running {previous.version} again")
        return StepVerdict("Waiting", f"not back on {previous.version}")

    def batch_message(self, names: str, version: str) -> str:
        return f"power-cycling {names} into {version}"

    async def _ask(
        self, entry: UnitRollout, seen: ComputeUnit | None, *, again: bool
    ) -> str | None:
        """Ask for the power cycle ``entry.request`` through the unit's annotation; ``again``:
        only if it never reached the unit."""
        if again and (seen is None or not _unasked(seen, entry.request)):
            return None
        for _ in range(_WRITE_ATTEMPTS):
            try:
                unit = await self._store.get(ComputeUnit, entry.name)
            except NotFound:
                return _GONE
            unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = entry.request
            try:
                await self._store.update(unit)
            except Conflict:
                continue
            break
        else:
            raise TemporaryError(f"cannot annotate computeunit {entry.name}: too many conflicts")
        self._enqueue("ComputeUnit", entry.name)
        entry.message = "power cycle requested"
        return None


def _unasked(unit: ComputeUnit, request: str) -> bool:
    """Whether ``request`` never reached the unit (and no other request is pending on it)."""
    asked = unit.metadata.annotations.get(POWER_CYCLE_ANNOTATION)
    done = unit.status.last_power_cycle
    return request not in (asked, done) and asked in (None, done)


def _runs(unit: ComputeUnit, version: str) -> bool:
    return unit.status.phase == "Running" and unit.status.os_version == version
