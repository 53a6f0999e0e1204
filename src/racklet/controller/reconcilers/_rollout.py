"""The Rollout reconciler: move selected units to a Release, a canary first, then batches.

Level-triggered; the Rollout's status is the whole record (which units are in which state,
which power cycle was asked of each, the channel's release before the rollout), so a restarted
controller carries on where the last one stopped. One pass:

- **Pending**: the release must exist, be bootable (a ``payload.bin`` target) and be signed
  in its channel; else condition ``Stalled`` and an event. A rollout whose units overlap an
  active one (or an older pending one) is refused: phase ``Failed``, condition
  ``Accepted=False``. Otherwise it records the units and the channel's current release.
- **Progressing**: the channel's ``current.json`` is made to name the release (idempotent),
  then the units of the batch are power-cycled through the unit's power-cycle annotation so
  they boot it (the A/B path try-boots and commits it). A unit is ``Updated`` when, after its
  cycle, it is Running with ``status.osVersion`` equal to the release version; ``Failed`` when
  it reports BootFailed or misses ``healthDeadlineSeconds``. The first batch is ``canary``
  units; later ones ``min(batchSize, maxUnavailable)``, fewer while selected units are already
  unavailable.
- **On failure**: with ``rollbackOnFailure`` the channel is pointed back and the units not yet
  confirmed on the new release are cycled onto the old one (``RollingBack`` then
  ``RolledBack``); units that already committed the new release keep it, because the BMC's
  rollback counter forbids booting below a committed version. Without it: phase ``Failed``.

A Release of the ``bmc-firmware`` channel is rolled out to the units' BMCs instead (same
strategy and rules, see :mod:`racklet.controller.reconcilers._bmc_firmware`).

Deliberately not here: per-rollout channels. Units follow the channel their BMC's trust bundle
names, so a unit outside the batch that reboots for another reason also picks the release up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from racklet.api import (
    POWER_CYCLE_ANNOTATION,
    ComputeUnit,
    Event,
    Release,
    Rollout,
    RolloutStatus,
    UnitRollout,
    remove_condition,
    set_condition,
)
from racklet.controller.errors import TemporaryError
from racklet.controller.reconcilers._bmc_firmware import CHANNEL as BMC_FIRMWARE
from racklet.controller.reconcilers._bmc_firmware import BmcFirmwareRollouts
from racklet.controller.reconcilers._release import Channels
from racklet.store import Conflict, NotFound, Store

ACTIVE = ("Progressing", "Paused", "RollingBack")
TERMINAL = ("Complete", "Failed", "RolledBack")
PAYLOAD = "payload.bin"
_WRITE_ATTEMPTS = 5

EventType = Literal["Normal", "Warning"]


class RolloutReconciler:
    """Drive one Rollout per call; ``clock`` (epoch seconds) times the health deadline."""

    def __init__(
        self,
        store: Store,
        channels: Channels,
        *,
        clock: Callable[[], float] = time.time,
        enqueue: Callable[[str, str], None] | None = None,
        poll_seconds: float = 2.0,
        bmc_firmware: BmcFirmwareRollouts | None = None,
    ) -> None:
        self._store = store
        self._bmc_firmware = bmc_firmware
        self._channels = channels
        self._clock = clock
        self._enqueue = enqueue or (lambda _kind, _name: None)
        self._poll = poll_seconds

    async def reconcile(self, name: str) -> float | None:
        try:
            rollout = await self._store.get(Rollout, name)
        except NotFound:
            return None
        if rollout.status.phase in TERMINAL:
            return None
        status = rollout.status.model_copy(deep=True)
        events: list[Event] = []
        step = _Pass(self, rollout, status, events)
        requeue = await step.run()
        status.updated_units = [u.name for u in status.units if u.phase == "Updated"]
        status.failed_units = [u.name for u in status.units if u.phase == "Failed"]
        status.observed_generation = rollout.metadata.generation
        if status != rollout.status:
            rollout.status = status
            await self._store.update_status(rollout)
        for event in events:
            await self._store.record_event(event)
        return requeue


class _Pass:
    """One reconcile of one Rollout: reads, decides, collects status changes and events."""

    def __init__(
        self, owner: RolloutReconciler, rollout: Rollout, status: RolloutStatus, events: list[Event]
    ) -> None:
        self.o, self.rollout, self.status, self.events = owner, rollout, status, events
        self.name = rollout.metadata.name
        self.spec = rollout.spec
        self.generation = rollout.metadata.generation

    def event(self, reason: str, message: str, type_: EventType = "Normal") -> None:
        self.events.append(Event.about("Rollout", self.name, reason, message, type=type_))

    def condition(self, type_: str, state: Literal["True", "False"], reason: str, msg: str) -> bool:
        return set_condition(
            self.status.conditions, type_, state, reason, msg, observed_generation=self.generation
        )

    def stalled(self, reason: str, message: str) -> float:
        if self.condition("Stalled", "True", reason, message):
            self.event(reason, message, "Warning")
        return self.o._poll * 2.5

    async def run(self) -> float | None:
        release = await self._release()
        if release is None:
            return self.stalled("ReleaseNotFound", f"release {self.spec.release!r} does not exist")
        if release.spec.channel == BMC_FIRMWARE and self.o._bmc_firmware is not None:
            return await self.o._bmc_firmware.run(self, release)
        if self.status.phase == "Pending":
            return await self._start(release)
        remove_condition(self.status.conditions, "Stalled")
        if self.status.phase == "RollingBack":
            return await self._roll_back()
        if self.spec.paused:
            if self.status.phase != "Paused":
                self.status.phase = "Paused"
                self.condition("Progressing", "False", "Paused", "spec.paused is true")
                self.event("Paused", "paused by spec.paused")
            return None
        if self.status.phase == "Paused":
            self.status.phase = "Progressing"
            self.event("Resumed", "spec.paused is false again")
        return await self._progress(release)

    async def _release(self) -> Release | None:
        try:
            return await self.o._store.get(Release, self.spec.release)
        except NotFound:
            return None

    # -- starting ---------------------------------------------------------------------------

    async def _start(self, release: Release) -> float | None:
        spec = release.spec
        if PAYLOAD not in {t.name for t in spec.targets}:
            return self.stalled("NotBootable", f"release {release.metadata.name} has no {PAYLOAD}")
        signed = await self.o._channels.published(spec.channel, spec.package, spec.version)
        if signed is None:
            message = f"{spec.package} {spec.version} is not signed in channel {spec.channel}"
            return self.stalled("ReleaseNotPublished", message)
        if self.spec.max_unavailable == 0:
            message = "maxUnavailable 0 leaves no unit to update (a power cycle takes it down)"
            return self.stalled("InvalidStrategy", message)
        units = await self.o._store.list(ComputeUnit, self.spec.selector)
        if not units:
            return self.stalled("NoUnits", f"no unit matches selector {self.spec.selector}")
        names = [
            u.metadata.name for u in sorted(units, key=lambda u: (u.spec.slot, u.metadata.name))
        ]
        rival = await self._overlapping(set(names))
        if rival is not None:
            message = f"units overlap rollout {rival}, which is running; wait for it or delete it"
            self.status.phase = "Failed"
            remove_condition(self.status.conditions, "Stalled")
            self.condition("Accepted", "False", "OverlappingRollout", message)
            self.event("OverlappingRollout", message, "Warning")
            return None
        by_name = {u.metadata.name: u for u in units}
        self.status.units = [
            UnitRollout(name=n, phase="Updated" if _runs(by_name[n], spec.version) else "Pending")
            for n in names
        ]
        self.status.channel = spec.channel
        self.status.previous = await self.o._channels.current(spec.channel)
        self.status.phase = "Progressing"
        remove_condition(self.status.conditions, "Stalled")
        self.condition("Accepted", "True", "Started", f"{len(names)} unit(s) selected")
        self.event("Started", f"rolling {len(names)} unit(s) to {spec.package} {spec.version}")
        return 0.0

    async def _overlapping(self, names: set[str]) -> str | None:
        mine = (self.rollout.metadata.creation_timestamp, self.name)
        for other in await self.o._store.list(Rollout):
            if other.metadata.name == self.name:
                continue
            active = other.status.phase in ACTIVE
            older = (
                other.status.phase == "Pending"
                and (other.metadata.creation_timestamp, other.metadata.name) < mine  # type: ignore[operator]
            )
            if not (active or older):
                continue
            theirs = {u.name for u in other.status.units}
            if not theirs:
                selected = await self.o._store.list(ComputeUnit, other.spec.selector)
                theirs = {u.metadata.name for u in selected}
            if theirs & names:
                return other.metadata.name
        return None

    # -- progressing ------------------------------------------------------------------------

    async def _ensure_channel(self, package: str, version: str) -> None:
        channel = self.status.channel or "stable"
        current = await self.o._channels.current(channel)
        if current is None or (current.package, current.version) != (package, version):
            await self.o._channels.point(channel, package, version)
            self.event("ChannelMoved", f"channel {channel} now names {package} {version}")

    async def _progress(self, release: Release) -> float | None:
        spec = release.spec
        await self._ensure_channel(spec.package, spec.version)
        units = await self._units()
        now = self.o._clock()
        for entry in self.status.units:
            if entry.phase == "Updating":
                unit = units.get(entry.name)
                if unit is not None and _unasked(unit, entry.request):
                    # the last leader died after recording the batch, before asking this unit
                    await self._cycle(entry, entry.request, entry.started or now)
                self._judge(entry, unit, spec.version, now)
        failed = [u.name for u in self.status.units if u.phase == "Failed"]
        if failed:
            return self._on_failure(failed, spec.version)
        if any(u.phase == "Updating" for u in self.status.units):
            return self.o._poll
        pending = [u for u in self.status.units if u.phase == "Pending"]
        if not pending:
            self.status.phase = "Complete"
            message = f"{len(self.status.units)} unit(s) run {spec.package} {spec.version}"
            self.condition("Progressing", "False", "Complete", message)
            self.condition("Complete", "True", "AllUnitsUpdated", message)
            self.event("Complete", message)
            return None
        canary = self.status.current_batch == 0 and self.spec.canary > 0
        size = self.spec.canary if canary else min(self.spec.batch_size, self.spec.max_unavailable)
        involved = {u.name for u in self.status.units}
        down = sum(
            1
            for n, u in units.items()
            if n in involved and u.status.phase != "Running" and self._entry(n).phase == "Pending"
        )
        room = min(size, self.spec.max_unavailable - down)
        if room <= 0:
            self.condition(
                "Progressing",
                "True",
                "WaitingForAvailability",
                f"{down} selected unit(s) are not Running; maxUnavailable is "
                f"{self.spec.max_unavailable}",
            )
            return self.o._poll
        batch = pending[:room]
        self.status.current_batch += 1
        request = f"rollout-{self.name}-{self.status.current_batch}"
        for entry in batch:
            entry.phase, entry.request, entry.started = "Updating", request, now
        await self._record()  # on record before any unit is asked: never started twice
        for entry in batch:
            await self._cycle(entry, request, now)
        label = "canary" if canary else f"batch {self.status.current_batch}"
        names = ", ".join(u.name for u in batch)
        self.condition("Progressing", "True", "BatchStarted", f"{label}: {names}")
        self.event("BatchStarted", f"{label}: power-cycling {names} into {spec.version}")
        return self.o._poll

    async def _record(self) -> None:
        """Write the status as it stands now (fenced on an HA controller), mid-pass."""
        intent = self.rollout.model_copy(deep=True)
        intent.status = self.status.model_copy(deep=True)
        written = await self.o._store.update_status(intent)
        self.rollout.metadata.resource_version = written.metadata.resource_version
        self.rollout.status = written.status

    def _entry(self, name: str) -> UnitRollout:
        return next(u for u in self.status.units if u.name == name)

    async def _units(self) -> dict[str, ComputeUnit]:
        wanted = {u.name for u in self.status.units}
        return {
            u.metadata.name: u
            for u in await self.o._store.list(ComputeUnit)
            if u.metadata.name in wanted
        }

    def _judge(
        self, entry: UnitRollout, unit: ComputeUnit | None, version: str, now: float
    ) -> None:
        if unit is None:
            entry.phase, entry.message = "Failed", "the unit is gone"
            self.event("UnitFailed", f"{entry.name}: the unit is gone", "Warning")
            return
        cycled = unit.status.last_power_cycle == entry.request
        if cycled and _runs(unit, version):
            entry.phase, entry.message = "Updated", f"Running {version}"
            self.event("UnitUpdated", f"{entry.name} runs {version}")
            return
        if cycled and unit.status.phase == "BootFailed":
            entry.phase, entry.message = "Failed", "BootFailed after its power cycle"
        elif entry.started is not None and now - entry.started > self.spec.health_deadline_seconds:
            seen = unit.status.os_version or "no version"
            entry.phase = "Failed"
            entry.message = (
                f"not Running {version} within {self.spec.health_deadline_seconds:g} s "
                f"(phase {unit.status.phase}, {seen})"
            )
        else:
            return
        self.event("UnitFailed", f"{entry.name}: {entry.message}", "Warning")

    def _on_failure(self, failed: list[str], version: str) -> float | None:
        message = f"{', '.join(failed)} failed the health gate for {version}"
        self.condition("Healthy", "False", "UnitFailed", message)
        if self.spec.rollback_on_failure and self.status.previous is not None:
            self.status.phase = "RollingBack"
            self.condition("Progressing", "False", "RollingBack", message)
            self.event("RollingBack", f"{message}; rolling back", "Warning")
            return 0.0
        self.status.phase = "Failed"
        why = "no release to roll back to" if self.spec.rollback_on_failure else "no rollback"
        self.condition("Progressing", "False", "Failed", f"{message} ({why})")
        self.event("Failed", f"{message}; stopped ({why})", "Warning")
        return None

    async def _cycle(self, entry: UnitRollout, request: str, now: float) -> None:
        """Ask for a power cycle through the unit's annotation (the unit reconciler acts)."""
        for _ in range(_WRITE_ATTEMPTS):
            try:
                unit = await self.o._store.get(ComputeUnit, entry.name)
            except NotFound:
                entry.phase, entry.message = "Failed", "the unit is gone"
                return
            unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = request
            try:
                await self.o._store.update(unit)
            except Conflict:
                continue
            break
        else:
            raise TemporaryError(f"cannot annotate computeunit {entry.name}: too many conflicts")
        self.o._enqueue("ComputeUnit", entry.name)
        entry.request, entry.started, entry.message = request, now, "power cycle requested"
        if entry.phase in ("Pending", "Updating"):
            entry.phase = "Updating"

    # -- rolling back -----------------------------------------------------------------------

    async def _roll_back(self) -> float | None:
        previous = self.status.previous
        assert previous is not None  # only entered with a release to go back to
        await self._ensure_channel(previous.package, previous.version)
        units = await self._units()
        now = self.o._clock()
        request = f"rollout-{self.name}-rollback"
        for entry in self.status.units:
            if entry.phase in ("Failed", "Updating"):
                await self._cycle(entry, request, now)
                entry.phase = "RollingBack"
            elif entry.phase == "RollingBack":
                unit = units.get(entry.name)
                if (
                    unit is not None
                    and unit.status.last_power_cycle == request
                    and _runs(unit, previous.version)
                ):
                    entry.phase, entry.message = "RolledBack", f"Running {previous.version}"
                    self.event("UnitRolledBack", f"{entry.name} runs {previous.version} again")
                elif (
                    entry.started is not None
                    and now - entry.started > self.spec.health_deadline_seconds
                ):
                    entry.message = f"not back on {previous.version} in time"
        waiting = [
            u for u in self.status.units if u.phase == "RollingBack" and "in time" not in u.message
        ]
        if waiting:
            return self.o._poll
        stuck = [u.name for u in self.status.units if u.phase == "RollingBack"]
        kept = [u.name for u in self.status.units if u.phase == "Updated"]
        if stuck:
            self.status.phase = "Failed"
            message = f"{', '.join(stuck)} did not come back on {previous.version}"
            self.condition("Progressing", "False", "RollbackFailed", message)
            self.event("RollbackFailed", message, "Warning")
            return None
        self.status.phase = "RolledBack"
        message = f"channel {self.status.channel} names {previous.package} {previous.version} again"
        if kept:
            message += (
                f"; {', '.join(kept)} keep the new release (rollback protection: a committed "
                "version is never downgraded)"
            )
        self.condition("Progressing", "False", "RolledBack", message)
        self.event("RolledBack", message, "Warning")
        return None


def _unasked(unit: ComputeUnit, request: str) -> bool:
    """Whether ``request`` never reached the unit (and no other request is pending on it)."""
    asked = unit.metadata.annotations.get(POWER_CYCLE_ANNOTATION)
    done = unit.status.last_power_cycle
    return request not in (asked, done) and asked in (None, done)


def _runs(unit: ComputeUnit, version: str) -> bool:
    return unit.status.phase == "Running" and unit.status.os_version == version
