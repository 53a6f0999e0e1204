"""The rollout engine: one strategy for every kind of update a Rollout drives.

A Rollout moves the units its selector picks to a Release. *What* moving one unit means
belongs to a :class:`Target`: power-cycling a unit into a unit-OS release
(:mod:`._os_target`), or pushing firmware to the unit's BMC through Redfish UpdateService
(:mod:`._firmware_target`). *How* units are moved is this module, the same for both:

1. **Start** (phase ``Pending``). The release must exist and be signed in its channel, and
   the target must accept it and the units (an OS release needs a payload; firmware is one
   image, and every BMC needs a client); else condition ``Stalled`` and one event. A rollout
   whose units overlap an active one (or an older pending one) is refused: phase ``Failed``,
   ``Accepted=False``. Units already on the version start ``Updated``. The channel's current
   release is kept in ``status.previous``: it is what a rollback returns to.
2. **Batches** (phase ``Progressing``). The channel is made to name the release. ``canary``
   units go first, then batches of ``min(batchSize, maxUnavailable)`` in slot order, each once
   the one before is all ``Updated``. Units not yet updated that are unavailable (the target
   says what that means: a unit not Running, a BMC not answering) count against
   ``maxUnavailable``: the batch shrinks, and with none to spare nothing starts.
3. **Exactly once.** A batch is written to the Rollout's status (fenced, on an HA controller)
   with a request id, ``rollout-<name>-<batch>``, *before* any unit is asked. A controller that
   takes over finds the batch on record and hands each unit to the target again with the same
   id; the target carries the step out only if the unit shows no trace of it.
4. **The health gate.** The target judges each unit from what it observes: ``Updated``,
   ``Failed``, or not yet; a unit not ``Updated`` within ``healthDeadlineSeconds`` of its start
   fails.
5. **On failure**, with ``rollbackOnFailure`` and a release to go back to, the channel is
   pointed back and every unit of the rollout not confirmed on the new release is taken back
   (``RollingBack``, then ``RolledBack``); units that committed the new release keep it (the
   rollback floor, :mod:`racklet.versions`). Without ``rollbackOnFailure``, or when the
   channel named no release before, the rollout stops: phase ``Failed``.
6. **Pause.** ``spec.paused`` holds the rollout between batches (``Paused``); clearing it
   resumes where it stopped.
7. **Roll back on request.** ``spec.rollBack`` (the dashboard's button) takes a rollout that
   is progressing, paused or complete back as a failure would (step 5).

Level-triggered: the Rollout's status is the whole record, so a restarted controller carries
on where the last one stopped. The engine only decides; every read or write of a unit or a
BMC is a target's, and the engine's own I/O is the Rollout, its events and the channel.

Deliberately not here: per-rollout channels. Units follow the channel their BMC's trust
bundle names, so a unit outside the batch that reboots for another reason also picks the
release up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, Literal

from racklet.api import (
    ComputeUnit,
    Event,
    Release,
    Rollout,
    RolloutSpec,
    RolloutStatus,
    UnitRollout,
    remove_condition,
    set_condition,
)
from racklet.controller.reconcilers._release import BMC_FIRMWARE_CHANNEL, Channels
from racklet.controller.rollout._os_target import UnitOsTarget
from racklet.controller.rollout._target import Seen, StepVerdict, Target
from racklet.store import NotFound, Store

ACTIVE = ("Progressing", "Paused", "RollingBack")
TERMINAL = ("Complete", "Failed", "RolledBack")

EventType = Literal["Normal", "Warning"]


def batch_room(spec: RolloutSpec, started: int, down: int) -> int:
    """How many pending units the next batch takes (0 or less: wait), after ``started``
    batches, with ``down`` of the rollout's pending units unavailable: the canary first, then
    ``min(batchSize, maxUnavailable)``, never more than ``maxUnavailable`` units down at once."""
    canary = started == 0 and spec.canary > 0
    size = spec.canary if canary else min(spec.batch_size, spec.max_unavailable)
    return min(size, spec.max_unavailable - down)


class RolloutReconciler:
    """Drive one Rollout per call; ``clock`` (epoch seconds) times the health deadline.

    Releases of the ``bmc-firmware`` channel go to ``bmc_firmware`` (if given), all others to
    the unit-OS target.
    """

    def __init__(
        self,
        store: Store,
        channels: Channels,
        *,
        clock: Callable[[], float] = time.time,
        enqueue: Callable[[str, str], None] | None = None,
        poll_seconds: float = 2.0,
        bmc_firmware: Target[Any] | None = None,
    ) -> None:
        self._store = store
        self._channels = channels
        self._clock = clock
        self._poll = poll_seconds
        self._os: Target[Any] = UnitOsTarget(store, enqueue or (lambda _kind, _name: None))
        self._firmware = bmc_firmware

    def _target(self, release: Release) -> Target[Any]:
        if release.spec.channel == BMC_FIRMWARE_CHANNEL and self._firmware is not None:
            return self._firmware
        return self._os

    async def reconcile(self, name: str) -> float | None:
        try:
            rollout = await self._store.get(Rollout, name)
        except NotFound:
            return None
        if rollout.status.phase in TERMINAL:
            return None
        status = rollout.status.model_copy(deep=True)
        events: list[Event] = []
        requeue = await _Pass(self, rollout, status, events).run()
        status.updated_units = [u.name for u in status.units if u.phase == "Updated"]
        status.failed_units = [u.name for u in status.units if u.phase == "Failed"]
        status.observed_generation = rollout.metadata.generation
        if status != rollout.status:
            rollout.status = status
            await self._store.update_status(rollout)
        for event in events:
            await self._store.record_event(event)
        return requeue


class _Pass(Generic[Seen]):
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
        try:
            release = await self.o._store.get(Release, self.spec.release)
        except NotFound:
            return self.stalled("ReleaseNotFound", f"release {self.spec.release!r} does not exist")
        target: Target[Seen] = self.o._target(release)
        if self.status.phase == "Pending":
            return await self._start(release, target)
        remove_condition(self.status.conditions, "Stalled")
        asked = self.spec.roll_back and self.status.phase in ("Progressing", "Paused", "Complete")
        if asked and not self._asked_to_roll_back():
            return None
        if self.status.phase == "RollingBack":
            return await self._roll_back(release, target)
        if self.spec.paused:
            if self.status.phase != "Paused":
                self.status.phase = "Paused"
                self.condition("Progressing", "False", "Paused", "spec.paused is true")
                self.event("Paused", "paused by spec.paused")
            return None
        if self.status.phase == "Paused":
            self.status.phase = "Progressing"
            self.event("Resumed", "spec.paused is false again")
        return await self._progress(release, target)

    # -- starting ---------------------------------------------------------------------------

    async def _start(self, release: Release, target: Target[Seen]) -> float | None:
        spec = release.spec
        signed = await self.o._channels.published(spec.channel, spec.package, spec.version)
        if signed is None:
            message = f"{spec.package} {spec.version} is not signed in channel {spec.channel}"
            return self.stalled("ReleaseNotPublished", message)
        noun = target.noun
        if self.spec.max_unavailable == 0:
            message = f"maxUnavailable 0 leaves no {noun} to update (an update takes it down)"
            return self.stalled("InvalidStrategy", message)
        units = await self.o._store.list(ComputeUnit, self.spec.selector)
        if not units:
            return self.stalled("NoUnits", f"no unit matches selector {self.spec.selector}")
        names = [
            u.metadata.name for u in sorted(units, key=lambda u: (u.spec.slot, u.metadata.name))
        ]
        refused = target.admit(release, signed, names)
        if refused is not None:
            return self.stalled(*refused)
        rival = await self._overlapping(set(names))
        if rival is not None:
            message = f"units overlap rollout {rival}, which is running; wait for it or delete it"
            self.status.phase = "Failed"
            remove_condition(self.status.conditions, "Stalled")
            self.condition("Accepted", "False", "OverlappingRollout", message)
            self.event("OverlappingRollout", message, "Warning")
            return None
        entries = [UnitRollout(name=n) for n in names]
        seen = await target.observe(entries)
        for entry in entries:
            if target.runs(seen.get(entry.name), spec.version):
                entry.phase = "Updated"
        self.status.units = entries
        self.status.channel = spec.channel
        self.status.previous = await self.o._channels.current(spec.channel)
        self.status.phase = "Progressing"
        remove_condition(self.status.conditions, "Stalled")
        self.condition("Accepted", "True", "Started", f"{len(names)} {noun}(s) selected")
        self.event("Started", f"updating {len(names)} {noun}(s) to {spec.package} {spec.version}")
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

    async def _progress(self, release: Release, target: Target[Seen]) -> float | None:
        spec = release.spec
        await self._ensure_channel(spec.package, spec.version)
        now = self.o._clock()
        updating = [u for u in self.status.units if u.phase == "Updating"]
        seen = await target.observe(updating) if updating else {}
        for entry in updating:
            unit = seen.get(entry.name)
            # a controller that took over finds the batch on record: each unit once
            failure = await target.start(entry, release, unit, again=True)
            if failure is not None:
                self._unit_failed(entry, failure)
                continue
            self._judge(entry, target.judge(entry, unit, spec.version), now)
        failed = [u.name for u in self.status.units if u.phase == "Failed"]
        if failed:
            return self._on_failure(failed, f"{spec.package} {spec.version}")
        if any(u.phase == "Updating" for u in self.status.units):
            return self.o._poll
        pending = [u for u in self.status.units if u.phase == "Pending"]
        if not pending:
            self.status.phase = "Complete"
            message = f"{len(self.status.units)} {target.noun}(s) run {spec.package} {spec.version}"
            self.condition("Progressing", "False", "Complete", message)
            self.condition("Complete", "True", "AllUnitsUpdated", message)
            self.event("Complete", message)
            return None
        return await self._next_batch(release, target, pending, now)

    async def _next_batch(
        self, release: Release, target: Target[Seen], pending: list[UnitRollout], now: float
    ) -> float | None:
        canary = self.status.current_batch == 0 and self.spec.canary > 0
        seen = await target.observe(pending)
        down = sum(1 for u in pending if not target.available(seen.get(u.name)))
        room = batch_room(self.spec, self.status.current_batch, down)
        if room <= 0:
            self.condition(
                "Progressing",
                "True",
                "WaitingForAvailability",
                f"{down} selected {target.noun}(s) are unavailable; maxUnavailable is "
                f"{self.spec.max_unavailable}",
            )
            return self.o._poll
        batch = pending[:room]
        self.status.current_batch += 1
        request = f"rollout-{self.name}-{self.status.current_batch}"
        for entry in batch:
            entry.phase, entry.request, entry.started = "Updating", request, now
            entry.message = "starting"
        await self._record()  # on record before any unit is asked: never started twice
        for entry in batch:
            failure = await target.start(entry, release, seen.get(entry.name), again=False)
            if failure is not None:
                self._unit_failed(entry, failure)
        label = "canary" if canary else f"batch {self.status.current_batch}"
        names = ", ".join(u.name for u in batch)
        self.condition("Progressing", "True", "BatchStarted", f"{label}: {names}")
        self.event("BatchStarted", f"{label}: {target.batch_message(names, release.spec.version)}")
        return self.o._poll

    async def _record(self) -> None:
        """Write the status as it stands now (fenced on an HA controller), mid-pass."""
        intent = self.rollout.model_copy(deep=True)
        intent.status = self.status.model_copy(deep=True)
        written = await self.o._store.update_status(intent)
        self.rollout.metadata.resource_version = written.metadata.resource_version
        self.rollout.status = written.status

    def _unit_failed(self, entry: UnitRollout, message: str) -> None:
        entry.phase, entry.message = "Failed", message
        self.event("UnitFailed", f"{entry.name}: {message}", "Warning")

    def _past_deadline(self, entry: UnitRollout, now: float) -> bool:
        started = entry.started
        return started is not None and now - started > self.spec.health_deadline_seconds

    def _judge(self, entry: UnitRollout, verdict: StepVerdict, now: float) -> None:
        if verdict.state == "Done":
            entry.phase, entry.message = "Updated", verdict.message
            self.event("UnitUpdated", f"{entry.name}: {verdict.message}")
        elif verdict.state == "Failed":
            self._unit_failed(entry, verdict.message)
        elif self._past_deadline(entry, now):
            deadline = f"{verdict.message} within {self.spec.health_deadline_seconds:g} s"
            self._unit_failed(
                entry, f"{deadline} ({verdict.detail})" if verdict.detail else deadline
            )

    def _on_failure(self, failed: list[str], release: str) -> float | None:
        message = f"{', '.join(failed)} failed the health gate for {release}"
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

    # -- rolling back -----------------------------------------------------------------------

    def _asked_to_roll_back(self) -> bool:
        """``spec.rollBack``: roll back at once, as after a failure, if the channel named a
        release before this rollout (else a condition and an event say why not)."""
        if self.status.previous is None:
            message = "spec.rollBack: the channel named no release before this rollout"
            if self.condition("RolledBack", "False", "NothingToRollBackTo", message):
                self.event("NothingToRollBackTo", message, "Warning")
            return False
        self.status.phase = "RollingBack"
        self.condition("Progressing", "False", "RollingBack", "spec.rollBack is true")
        self.event("RollingBack", "rollback asked for by spec.rollBack", "Warning")
        return True

    async def _roll_back(self, release: Release, target: Target[Seen]) -> float | None:
        previous = self.status.previous
        assert previous is not None  # only entered with a release to go back to
        version = release.spec.version
        await self._ensure_channel(previous.package, previous.version)
        now = self.o._clock()
        request = f"rollout-{self.name}-rollback"
        turning = {u.name for u in self.status.units if u.phase in ("Failed", "Updating")}
        for entry in self.status.units:
            if entry.name in turning:
                entry.phase, entry.request, entry.started = "RollingBack", request, now
                entry.message = "rolling back"
        if turning:
            await self._record()  # as for a batch: on record before any unit is asked
        back = [u for u in self.status.units if u.phase == "RollingBack"]
        seen = await target.observe(back) if back else {}
        for entry in back:
            unit = seen.get(entry.name)
            await target.roll_back(entry, previous, unit, again=entry.name not in turning)
            verdict = target.judge_back(entry, unit, previous, version)
            if verdict.state == "Done":
                entry.phase, entry.message = "RolledBack", verdict.message
                self.event("UnitRolledBack", f"{entry.name}: {verdict.message}")
            elif self._past_deadline(entry, now):
                entry.message = f"{verdict.message} within {self.spec.health_deadline_seconds:g} s"
        stuck = [u.name for u in self.status.units if u.phase == "RollingBack"]
        if any(not self._past_deadline(u, now) for u in self.status.units if u.name in stuck):
            return self.o._poll
        if stuck:
            self.status.phase = "Failed"
            message = (
                f"{', '.join(stuck)} did not come back from {version} within "
                f"{self.spec.health_deadline_seconds:g} s"
            )
            self.condition("Progressing", "False", "RollbackFailed", message)
            self.event("RollbackFailed", message, "Warning")
            return None
        self.status.phase = "RolledBack"
        message = f"channel {self.status.channel} names {previous.package} {previous.version} again"
        kept = [u.name for u in self.status.units if u.phase == "Updated"]
        if kept:
            message += (
                f"; {', '.join(kept)} keep {version} (rollback protection: a committed version "
                "is never downgraded)"
            )
        self.condition("Progressing", "False", "RolledBack", message)
        self.event("RolledBack", message, "Warning")
        return None
