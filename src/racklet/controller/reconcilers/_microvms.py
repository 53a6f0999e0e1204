"""The MicroVM reconciler: schedule each VM, keep its lease, move it when its unit is lost.

Level-triggered like the others: it reads the VM, the units (their phase and power state as
the ComputeUnit reconciler observed them, their capacity from their agents' heartbeats) and
the other VMs, and writes the VM's status. It never talks to a unit: the unit's agent picks
its assignments up and reports the VM's phase (``status.phase`` beyond Scheduled is the
agent's report).

Restart policies, as Kubernetes has them: a VM that ended (the agent reported it) starts
again, as a new attempt placed like a new VM, under ``Always`` whatever its exit and under
``OnFailure`` when it failed, after a back-off that doubles with each restart (2 s up to
5 min); under ``Never`` the end is final. A VM whose unit is lost moves under ``Always`` and
``OnFailure`` and ends ``Failed`` with the reason under ``Never``.

Exactly once: a VM assigned to a unit holds a lease (``status.leaseUntil``) that is renewed
while its unit is Running. When the unit stops being Running, the VM is moved at once if the
BMC says the unit is powered off or it is Absent (power fences it), else only after the
lease ran out: an agent that cannot renew its lease stops its VMs before then, so after a
partition heals the VM runs on one unit only.

A VM a MicroVMSet made (its owner reference) is deleted here when the set is gone or is
another object of the same name (garbage collection: the set's own reconciler deletes its VMs
when it sees the set go, this catches a set deleted while no controller ran); a change of
such a VM's phase or unit wakes its set (``wake_set``), which counts Running replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Iterable

from racklet.api import (
    TERMINAL_VM_PHASES,
    ComputeUnit,
    Event,
    MicroVM,
    MicroVMSet,
    MicroVMStatus,
    Rack,
    set_condition,
    utcnow,
)
from racklet.controller._heartbeats import HeartbeatRegistry
from racklet.controller._scheduler import (
    Placement,
    UnitView,
    expected_watts,
    place,
)
from racklet.store import NotFound, Store

LEASE_SECONDS = 15.0
RECHECK_SECONDS = 1.0
DEFAULT_CORES = 4
DEFAULT_MEMORY_MIB = 4096
"""A unit whose agent has not said its size yet counts as a 4 GB Raspberry Pi 4."""
FENCED_PHASES = frozenset({"Off", "Absent"})
UNIT_LABEL = "racklet.dev/unit"
"""A label every unit has for the scheduler, its name: ``nodeSelector: racklet.dev/unit=unit-3``."""
RESTART_BACKOFF_SECONDS = 2.0
MAX_RESTART_BACKOFF_SECONDS = 300.0


def should_restart(vm: MicroVM) -> bool:
    """Whether ``vm``, which ended, is to start again under its restart policy."""
    policy, phase = vm.spec.restart_policy, vm.status.phase
    return (policy == "Always" and phase in TERMINAL_VM_PHASES) or (
        policy == "OnFailure" and phase == "Failed"
    )


def _lost(unit: ComputeUnit | None) -> str:
    """How a unit that fences its VMs was lost, for the VM's reason and event."""
    if unit is None:
        return "is gone"
    if unit.status.phase == "Absent":
        return "was pulled from its slot"
    return "is powered off"


def restart_backoff(restarts_so_far: int) -> float:
    """Seconds to wait after an end before the next start: 2 s, doubling, at most 5 min (a
    VM that fails at once must not keep a unit and the TUF server busy)."""
    exponent = min(restarts_so_far, 16)
    return min(RESTART_BACKOFF_SECONDS * 2.0**exponent, MAX_RESTART_BACKOFF_SECONDS)


class MicroVMReconciler:
    def __init__(
        self,
        store: Store,
        heartbeats: HeartbeatRegistry,
        *,
        now: Callable[[], dt.datetime] = utcnow,
        wake: Callable[[str], None] | None = None,
        wake_set: Callable[[str], None] | None = None,
        assigned: Callable[[str], None] | None = None,
    ) -> None:
        """``wake`` queues a VM at once (the runtime's enqueue), for :meth:`unit_changed`;
        ``wake_set`` a MicroVMSet, when one of its VMs changes; ``assigned(unit)`` is told
        once a VM's placement on ``unit`` is stored (its agent is asked to heartbeat now)."""
        self._assigned = assigned
        self._store = store
        self._heartbeats = heartbeats
        self._now = now
        self._wake = wake
        self._wake_set = wake_set
        self._placed: dict[str, str | None] = {}
        """Each live VM's unit as of its last reconcile (None: waiting for a place)."""
        self._placing = asyncio.Lock()
        self._seen: dict[str, tuple[str, str, str | None]] = {}
        """Each VM of a set: its set, phase and unit as of its last reconcile."""

    def _tell_set(self, name: str, vm: MicroVM | None) -> None:
        """Wake the VM's set if the VM's phase or unit changed since the last look."""
        before = self._seen.pop(name, None)
        owner = vm.metadata.controller_owner("MicroVMSet") if vm is not None else None
        now = None if vm is None or owner is None else (owner.name, vm.status.phase, vm.status.unit)
        if now is not None:
            self._seen[name] = now
        if before != now and self._wake_set is not None:
            for set_name in {s[0] for s in (before, now) if s is not None}:
                self._wake_set(set_name)

    async def _orphaned(self, vm: MicroVM) -> bool:
        """Delete ``vm`` if the MicroVMSet that made it is gone; whether it was."""
        owner = vm.metadata.controller_owner("MicroVMSet")
        if owner is None:
            return False
        try:
            vmset = await self._store.get(MicroVMSet, owner.name)
        except NotFound:
            vmset = None
        if vmset is not None and vmset.metadata.uid == owner.uid:
            return False
        with contextlib.suppress(NotFound):
            await self._store.delete(MicroVM, vm.metadata.name)
        message = f"its owner microvmset {owner.name} (uid {owner.uid}) is gone: deleted"
        await self._store.record_event(
            Event.about("MicroVM", vm.metadata.name, "OwnerGone", message)
        )
        return True

    def unit_changed(self, unit: str, phase: str) -> None:
        """A unit's phase changed: look at once at the VMs on it and, when it runs, at those
        waiting for a place, rather than at their next recheck (up to a second later, which
        is five heartbeat intervals of a sped-up twin)."""
        if self._wake is None:
            return
        for vm, on in list(self._placed.items()):
            if on == unit or (on is None and phase == "Running"):
                self._wake(vm)

    def _view(self, unit: ComputeUnit) -> UnitView:
        beat = self._heartbeats.latest(unit.metadata.name)
        cores = beat.body.cores if beat is not None and beat.body.cores else DEFAULT_CORES
        memory = (
            beat.body.memory_mi_b
            if beat is not None and beat.body.memory_mi_b
            else DEFAULT_MEMORY_MIB
        )
        return UnitView(
            unit.metadata.name,
            unit.status.phase == "Running",
            cores,
            memory,
            # every unit also carries its name, as Kubernetes nodes carry their hostname
            dict(unit.metadata.labels) | {UNIT_LABEL: unit.metadata.name},
        )

    async def reconcile(self, name: str) -> float | None:
        try:
            vm = await self._store.get(MicroVM, name)
        except NotFound:
            self._placed.pop(name, None)
            self._tell_set(name, None)
            return None
        if await self._orphaned(vm):
            self._placed.pop(name, None)
            self._tell_set(name, None)
            return None
        now = self._now()
        events: list[Event] = []
        self._placed[name] = vm.status.unit
        if vm.status.phase in TERMINAL_VM_PHASES:
            if not should_restart(vm):
                self._placed.pop(name, None)
                self._tell_set(name, vm)
                return None
            ended = vm.status.finished_time or now
            wait = restart_backoff(vm.status.restarts) - (now - ended).total_seconds()
            if wait > 0:
                self._tell_set(name, vm)
                return wait
            status = vm.status.model_copy(deep=True)
            how = f"exit code {status.exit_code}" if status.exit_code is not None else "failed"
            message = (
                f"ended on {status.unit} ({how}{': ' + status.reason if status.reason else ''}); "
                f"restart {status.restarts + 1} under restartPolicy {vm.spec.restart_policy}"
            )
            events.append(Event.about("MicroVM", name, "Restarting", message))
            status.restarts += 1
            status.unit, status.lease_until, status.console_url = None, None, None
            status.phase, status.reason = "Pending", ""
            status.started_time = status.finished_time = None
        else:
            status = vm.status.model_copy(deep=True)
        units = {u.metadata.name: u for u in await self._store.list(ComputeUnit)}
        gen = vm.metadata.generation
        if status.unit is not None:
            unit = units.get(status.unit)
            if unit is not None and unit.status.phase == "Running":
                status.lease_until = now + dt.timedelta(seconds=LEASE_SECONDS)
            else:
                fenced = unit is None or unit.status.phase in FENCED_PHASES
                fenced = fenced or (unit is not None and unit.status.power_state == "Off")
                expired = status.lease_until is None or status.lease_until <= now
                if fenced or expired:
                    lost = status.unit
                    how = _lost(unit) if fenced else "missed its lease"
                    if vm.spec.restart_policy == "Never":
                        status.phase, status.reason = "Failed", f"unit {lost} {how}"
                        events.append(
                            Event.about("MicroVM", name, "UnitLost", status.reason, "Warning")
                        )
                    else:
                        status.unit, status.lease_until = None, None
                        status.phase, status.reason = "Pending", ""
                        status.console_url = None
                        events.append(
                            Event.about(
                                "MicroVM", name, "Rescheduling", f"unit {lost} {how}", "Warning"
                            )
                        )
        placing = status.unit is None and status.phase not in TERMINAL_VM_PHASES
        # One placement at a time: a VM placed concurrently with another would not see it
        # and both would pick the emptiest unit. The VM's status is written under the lock.
        async with self._placing if placing else contextlib.nullcontext():
            if placing:
                await self._place(vm, status, units, now, events)
            status.observed_generation = gen
            self._placed[name] = status.unit  # an end is dropped at the next look (above)
            if status != vm.status:
                placed = placing and status.unit is not None
                vm.status = status
                await self._store.update_status(vm)
                if placed and self._assigned is not None:
                    assert status.unit is not None
                    self._assigned(status.unit)
        for event in events:
            await self._store.record_event(event)
        self._tell_set(name, vm)
        return RECHECK_SECONDS

    async def _place(
        self,
        vm: MicroVM,
        status: MicroVMStatus,
        units: dict[str, ComputeUnit],
        now: dt.datetime,
        events: list[Event],
    ) -> None:
        """Assign ``vm`` a unit in ``status``, or say there why none can take it."""
        name, gen = vm.metadata.name, vm.metadata.generation
        vms = await self._store.list(MicroVM)
        decision = place(
            vm,
            [self._view(u) for u in units.values()],
            vms,
            budget_headroom_watts=await self._headroom(units.values(), vms),
        )
        if isinstance(decision, Placement):
            status.unit, status.phase = decision.unit, "Scheduled"
            status.attempt += 1
            status.lease_until = now + dt.timedelta(seconds=LEASE_SECONDS)
            status.exit_code, status.reason = None, ""
            status.started_time = status.finished_time = None  # of this attempt
            message = f"assigned to {decision.unit} (attempt {status.attempt})"
            set_condition(
                status.conditions,
                "Scheduled",
                "True",
                "Scheduled",
                message,
                observed_generation=gen,
            )
            events.append(Event.about("MicroVM", name, "Scheduled", message))
        else:
            status.phase = "Pending"
            changed = set_condition(
                status.conditions,
                "Scheduled",
                "False",
                decision.reason,
                decision.message,
                observed_generation=gen,
            )
            if changed:
                events.append(
                    Event.about("MicroVM", name, decision.reason, decision.message, "Warning")
                )

    async def _headroom(self, units: Iterable[ComputeUnit], vms: list[MicroVM]) -> float | None:
        """The busbar's rating less what the rack draws and what assigned VMs will add."""
        racks = await self._store.list(Rack)
        if not racks:
            return None
        rated = racks[0].spec.psu_rated_watts
        drawn = sum(u.status.power_watts or 0.0 for u in units)
        coming = sum(
            expected_watts(v)
            for v in vms
            if v.status.unit and v.status.phase in ("Scheduled", "Starting")
        )
        return rated - drawn - coming
