"""Looking at one unit: what the reconciler remembers of it, and one look through its BMC.

A look is the Redfish System, the chassis (inventory, cached) and the environment metrics,
plus whether the unit's latest heartbeat belongs to its current boot and is fresh. The
chassis (the board's power ceiling, its presence) is read on the first look and again
whenever the system's ``Status.State`` changes (a hot-swap shows there as ``Absent``) or the
BMC failed to answer (it may have restarted with new firmware), so a look is two Redfish
reads, not three. The OS slots (versions, which one runs, a trial, the rollback floor) are
read likewise only when they may have moved: the power state, the boot progress or the OS
version the heartbeat names changed, or the last read showed a trial (it ends in a commit or a
fall-back within a few looks) or caught a commit between its two reads. Nothing here decides
or acts: the phase is :func:`derive_phase`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from racklet.controller._heartbeats import HeartbeatRecord, HeartbeatRegistry
from racklet.controller._phase import Observation
from racklet.redfish import (
    ChassisView,
    EnvironmentView,
    OsSlotView,
    RedfishClientError,
    RedfishError,
    RedfishUntrusted,
    ResetRequest,
    SystemView,
)


class Bmc(Protocol):
    """The part of :class:`racklet.redfish.RedfishClient` the reconciler uses."""

    async def system(self, system_id: str) -> SystemView: ...

    async def chassis(self, chassis_id: str) -> ChassisView: ...

    async def environment_metrics(self, chassis_id: str) -> EnvironmentView: ...

    async def reset(
        self, system_id: str, reset_type: str, *, idempotency_key: str | None = None
    ) -> None: ...

    async def set_power_limit(self, chassis_id: str, watts: float | None) -> None: ...

    async def patch(self, path: str, body: dict[str, Any]) -> None: ...

    async def reset_requests(self, manager_id: str = "bmc") -> list[ResetRequest]: ...

    async def os_slots(self) -> list[OsSlotView]: ...


@dataclass(frozen=True, slots=True)
class Hold:
    """A unit left as an operator set it at its BMC (``powerPolicy: Observe``), until its
    spec's generation moves."""

    powered: bool
    generation: int


@dataclass(slots=True)
class UnitMemory:
    """All the reconciler keeps about one unit between runs, so forgetting a deleted unit
    is dropping one object. None of it is truth (that is the store and the BMC): it saves
    reads and keeps this controller from repeating itself."""

    boot_mark: float = float("-inf")
    """Heartbeats received before this belong to an earlier boot."""
    inventory: tuple[str | None, ChassisView] | None = None
    """The chassis read, with the system ``Status.State`` seen with it."""
    last_action: tuple[str, float] | None = None
    """The last reset sent and when (the cooldown before sending the same again)."""
    cycled: str | None = None
    """The last power-cycle request this controller handled."""
    rack: str | None = None
    """The rack whose busbar budget counts this unit's draw."""
    powered_when_pulled: bool | None = None
    """Whether the board was powered when it left its slot (``newUnitPower: AsBefore``)."""
    powered: bool | None = None
    """Whether the last look found it powered (None: not looked at yet)."""
    resets_seen: int = 0
    """The newest Reset record of its BMC's EventLog already accounted for."""
    hold: Hold | None = None
    """Set while an out-of-band change is left standing (``powerPolicy: Observe``)."""
    os_slots: tuple[OsSlotView, ...] | None = None
    """The OS slots as last read; every look reports them, so a look whose status is not
    written (a second look after an action, a lost write) does not lose a read."""
    slots_seen: tuple[object, ...] | None = None
    """What the last read of the OS slots was made under (see :meth:`Inspector.look`)."""


class Inspector:
    """Takes one look at a unit through its BMC (see the module docstring)."""

    def __init__(
        self,
        heartbeats: HeartbeatRegistry,
        *,
        clock: Callable[[], float],
        heartbeat_timeout: float | None = None,
    ) -> None:
        """``heartbeat_timeout`` None: what the agent's announced interval gives
        (:meth:`HeartbeatRegistry.timeout_for`)."""
        self._heartbeats = heartbeats
        self._clock = clock
        self._heartbeat_timeout = heartbeat_timeout

    async def look(
        self,
        name: str,
        bmc: Bmc | None,
        memory: UnitMemory,
        *,
        chassis: ChassisView | None = None,
    ) -> Observation:
        """Look at the unit; ``chassis`` reuses a chassis read made moments ago."""
        if bmc is None:
            return Observation(error="no BMC credentials for this unit in the rack config")
        try:
            system = await bmc.system(name)
            if chassis is None:
                chassis = await self._chassis(name, bmc, system, memory)
        except RedfishClientError as exc:
            memory.inventory = None
            return Observation(error=str(exc), untrusted=isinstance(exc, RedfishUntrusted))
        try:
            environment: EnvironmentView | None = await bmc.environment_metrics(name)
        except RedfishError:
            environment = None  # a BMC without metrics still tells the phase
        except RedfishClientError as exc:
            memory.inventory = None
            return Observation(error=str(exc))
        now = self._clock()
        os_running = system.power_state == "On" and system.boot_last_state == "OSRunning"
        if not os_running:
            memory.boot_mark = now
        beat = self._heartbeats.latest(name)
        this_boot = beat is not None and beat.received >= memory.boot_mark
        fresh = this_boot and beat is not None and now - beat.received <= self._timeout(beat)
        # What the next heartbeat is news against: one this look could not take as the
        # running OS's (its BMC does not say the OS runs yet, none came, silence) is not.
        self._heartbeats.looked(name, beat, counted=fresh and os_running)
        os_version = beat.body.os_version if beat is not None else None
        return Observation(
            chassis=chassis,
            system=system,
            environment=environment,
            heartbeat_fresh=fresh,
            heartbeat_lost=this_boot and not fresh,  # it ran this boot, then fell silent
            os_slots=await self._os_slots(bmc, system, os_version, memory),
        )

    @staticmethod
    async def _os_slots(
        bmc: Bmc, system: SystemView, os_version: str | None, memory: UnitMemory
    ) -> tuple[OsSlotView, ...] | None:
        """The OS slots, read again only if they may have moved since the last read."""
        under = (system.power_state, system.boot_last_state, os_version)
        if memory.slots_seen == under:
            return memory.os_slots
        try:
            slots = tuple(await bmc.os_slots())
        except RedfishClientError:
            return memory.os_slots  # shown as last read; tried again at the next look
        # Two reads, so a commit may fall between them (the floors then differ): like a
        # trial, that is read again at the next look, not kept.
        settled = not any(slot.trial for slot in slots) and len({s.floor for s in slots}) <= 1
        memory.os_slots, memory.slots_seen = slots, under if settled else None
        return slots

    def _timeout(self, beat: HeartbeatRecord | None) -> float:
        if self._heartbeat_timeout is not None or beat is None:
            return self._heartbeat_timeout or self._heartbeats.fallback_timeout
        return self._heartbeats.timeout_for(beat)

    @staticmethod
    async def _chassis(name: str, bmc: Bmc, system: SystemView, memory: UnitMemory) -> ChassisView:
        """The chassis read last time, unless the system's state moved since."""
        known = memory.inventory
        if known is not None and known[0] == system.state:
            return known[1]
        chassis = await bmc.chassis(name)
        memory.inventory = (system.state, chassis)
        return chassis
