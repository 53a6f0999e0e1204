"""The ComputeUnit reconciler: observe the unit, derive its phase, act, write status.

Level-triggered and idempotent: each run reads the unit's spec and looks at the unit afresh
(Redfish system and environment metrics, the latest heartbeat). The chassis is inventory (the
board's power ceiling, its presence): it is read on the first look and again whenever the
system's ``Status.State`` changes (a hot-swap shows there as ``Absent``) or the BMC failed to
answer (it may have restarted with new firmware), so a look is two Redfish reads, not three.
It then

* powers the unit on when ``spec.power`` is On and it is Off — but only if the busbar budget
  allows (see :mod:`racklet.controller._budget`); otherwise it waits with condition
  ``PowerBudget=False`` (reason ``BusbarBudget``). This staggers a rack's power-on. Waiting
  units queue in the order they were refused; as soon as a look shows budget freed (a unit
  settled from its boot ceiling to its measured draw, or went off) the first in line is
  woken (``wake``, the runtime's enqueue), and each one powered on wakes the next, so a freed
  budget is used at once instead of at the next resync (200 s at 10,000 units).
* shuts it down gracefully when ``spec.power`` is Off and it is powered (the BMC forces it off
  by itself after a grace period);
* power-cycles it once per ``racklet.dev/power-cycle-request`` annotation value. The request
  is recorded in ``status.lastPowerCycle`` and ``status.pendingPowerCycle`` *before* the
  reset is sent, in a write that fails unless this controller still leads (the fenced store
  of an HA controller); the reset carries ``Idempotency-Key: <uid>/<request>``; the status
  write after it clears the pending mark. A controller that takes over and finds a cycle
  still pending sends it again with the same key, and the BMC carries a key out once: so a
  cycle is done exactly once across a failover. A failed reset is an event.

With ``fence`` (an HA controller) every reset is preceded by a check that this controller
still holds the lead; a deposed leader stops acting at once.

The phase comes only from the observation, never from the command just sent: after acting,
the reconciler looks at the unit again (system and metrics; the chassis read is reused) and
writes what that shows. When it already shows the action done — most BMCs report
``PowerState`` synchronously — there is no second reconcile; otherwise it looks again 0.2 s
later. Status is written only when something in it changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from racklet.api import (
    POWER_CYCLE_ANNOTATION,
    ComputeUnit,
    ComputeUnitStatus,
    Event,
    Rack,
    copy_model,
    find_condition,
    remove_condition,
    set_condition,
)
from racklet.controller._budget import Draw, Ledger
from racklet.controller._heartbeats import HeartbeatRegistry
from racklet.controller._phase import Observation, PhaseVerdict, derive_phase
from racklet.log import get_logger
from racklet.redfish import (
    ChassisView,
    EnvironmentView,
    RedfishClientError,
    RedfishError,
    SystemView,
)
from racklet.store import NotFound, Store

_WARNING_PHASES = ("BootFailed", "Unreachable", "Absent")
DEFAULT_MAX_WATTS = 10.0  # a unit whose BMC does not say MaxPowerWatts


class Bmc(Protocol):
    """The part of :class:`racklet.redfish.RedfishClient` the reconciler uses."""

    async def system(self, system_id: str) -> SystemView: ...

    async def chassis(self, chassis_id: str) -> ChassisView: ...

    async def environment_metrics(self, chassis_id: str) -> EnvironmentView: ...

    async def reset(
        self, system_id: str, reset_type: str, *, idempotency_key: str | None = None
    ) -> None: ...


class UnitObserver(Protocol):
    def unit(self, name: str, status: ComputeUnitStatus) -> None: ...


class ComputeUnitReconciler:
    def __init__(
        self,
        store: Store,
        bmcs: Mapping[str, Bmc],
        heartbeats: HeartbeatRegistry,
        *,
        rack_name: str,
        heartbeat_timeout: float = 10.0,
        action_cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        observer: UnitObserver | None = None,
        fence: Callable[[], Awaitable[None]] | None = None,
        wake: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._fence = fence
        self._wake = wake
        self._budget_line: dict[str, None] = {}  # refused power-ons, oldest first
        self._bmcs = bmcs
        self._heartbeats = heartbeats
        self._rack_name = rack_name
        self.heartbeat_timeout = heartbeat_timeout
        self._cooldown = action_cooldown
        self._clock = clock
        self._observer = observer
        self._budget_lock = asyncio.Lock()
        self._draws = Ledger()  # every unit's latest draw: the busbar budget's running total
        self._seeded = False  # whether units not observed yet were taken from their status
        self._boot_marks: dict[str, float] = {}  # heartbeats before this belong to an old boot
        self._last_action: dict[str, tuple[str, float]] = {}
        self._cycled: dict[str, str] = {}
        self._inventory: dict[str, tuple[str | None, ChassisView]] = {}
        """Each unit's chassis read, keyed by the system ``Status.State`` seen with it."""
        self._log = get_logger("controller")

    async def reconcile(self, name: str) -> float | None:
        try:
            unit = await self._store.get(ComputeUnit, name)
        except NotFound:
            self._forget(name)
            return None
        self._budget_line.pop(name, None)  # back in line below only if refused again
        bmc = self._bmcs.get(name)
        obs = await self._observe(name, bmc)
        verdict = derive_phase(obs)
        self._remember_draw(name, verdict.phase, obs)

        status = copy_model(unit.status)
        events: list[Event] = []
        action: str | None = None
        if bmc is not None and obs.error is None and obs.system is not None:
            action = await self._act(unit, bmc, obs, verdict, status, events)
        if action is not None:
            # Look again at once: a BMC that carried the action out already says so, and the
            # status then shows it without a second reconcile. The phase is still only what
            # was observed; a reset still in progress is looked at again shortly.
            obs = await self._observe(name, bmc, chassis=obs.chassis)
            verdict = derive_phase(obs)
            if action != "On" or obs.powered:  # keep the power-on's reserved draw till seen
                self._remember_draw(name, verdict.phase, obs)

        self._fill_status(unit, obs, verdict, status, events)
        if status != unit.status:
            unit.status = status
            await self._store.update_status(unit)
        for event in events:
            await self._store.record_event(event)
        if self._observer is not None:
            self._observer.unit(name, status)
        if action is None or _settled(action, obs):
            return None
        return 0.2

    # -- observe ----------------------------------------------------------------------------

    async def _observe(
        self, name: str, bmc: Bmc | None, *, chassis: ChassisView | None = None
    ) -> Observation:
        """Look at the unit; ``chassis`` reuses a chassis read made moments ago."""
        if bmc is None:
            return Observation(error="no BMC credentials for this unit in the rack config")
        try:
            system = await bmc.system(name)
            if chassis is None:
                chassis = await self._chassis(name, bmc, system)
        except RedfishClientError as exc:
            self._inventory.pop(name, None)
            return Observation(error=str(exc))
        try:
            environment: EnvironmentView | None = await bmc.environment_metrics(name)
        except RedfishError:
            environment = None  # a BMC without metrics still tells the phase
        except RedfishClientError as exc:
            self._inventory.pop(name, None)
            return Observation(error=str(exc))
        now = self._clock()
        if system.power_state != "On" or system.boot_last_state != "OSRunning":
            self._boot_marks[name] = now
        beat = self._heartbeats.latest(name)
        fresh = (
            beat is not None
            and beat.received >= self._boot_marks.get(name, float("-inf"))
            and now - beat.received <= self.heartbeat_timeout
        )
        return Observation(
            chassis=chassis, system=system, environment=environment, heartbeat_fresh=fresh
        )

    async def _chassis(self, name: str, bmc: Bmc, system: SystemView) -> ChassisView:
        """The chassis read last time, unless the system's state moved since."""
        known = self._inventory.get(name)
        if known is not None and known[0] == system.state:
            return known[1]
        chassis = await bmc.chassis(name)
        self._inventory[name] = (system.state, chassis)
        return chassis

    def _remember_draw(self, name: str, phase: str, obs: Observation) -> None:
        if obs.system is None or obs.chassis is None:
            return  # unreachable: keep the last known draw, the unit may still be on
        measured = obs.environment.power_watts if obs.environment else None
        draw = Draw(
            phase=phase,  # type: ignore[arg-type]
            powered=obs.powered,
            measured_watts=measured or 0.0,
            max_watts=obs.chassis.max_power_watts,
        )
        if self._draws.get(name) != draw and self._draws.set(name, draw):
            self._wake_next()

    def _wake_next(self) -> None:
        """Wake the unit first in line for the busbar budget, if any."""
        if self._wake is not None and self._budget_line:
            self._wake(next(iter(self._budget_line)))

    def _forget(self, name: str) -> None:
        self._budget_line.pop(name, None)
        if self._draws.pop(name) is not None:
            self._wake_next()
        for memo in (self._boot_marks, self._last_action, self._cycled, self._inventory):
            memo.pop(name, None)  # type: ignore[attr-defined]

    # -- act --------------------------------------------------------------------------------

    def _cooling_down(self, name: str, action: str) -> bool:
        last = self._last_action.get(name)
        return last is not None and last[0] == action and self._clock() - last[1] < self._cooldown

    async def _reset(self, name: str, bmc: Bmc, reset_type: str, key: str | None = None) -> None:
        if self._fence is not None:
            await self._fence()  # raises Fenced when another controller leads now
        await bmc.reset(name, reset_type, idempotency_key=key)
        self._last_action[name] = (reset_type, self._clock())
        self._boot_marks[name] = self._clock()
        self._log.info("%s: %s", name, reset_type, extra={"unit": name})

    async def _act(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        obs: Observation,
        verdict: PhaseVerdict,
        status: ComputeUnitStatus,
        events: list[Event],
    ) -> str | None:
        """Act on the difference between spec and observation; return what was done."""
        name = unit.metadata.name
        assert obs.system is not None and obs.chassis is not None
        if obs.chassis.absent:
            return None
        request = unit.metadata.annotations.get(POWER_CYCLE_ANNOTATION)
        if request and request == status.pending_power_cycle and request == status.last_power_cycle:
            return await self._resend_cycle(unit, bmc, request, status, events)
        if request and request != status.last_power_cycle:
            if self._cycled.get(name) != request:
                if unit.spec.power == "On" and obs.powered:
                    await self._record_intent(unit, request)
                    self._cycled[name] = request
                    await self._send_cycle(unit, bmc, request, events, "requested")
                else:
                    events.append(
                        _event(name, "PowerCycleSkipped", f"power cycle {request}: unit is off")
                    )
                self._cycled[name] = request
            status.last_power_cycle = request
            return "PowerCycle"

        if unit.spec.power == "Off":
            remove_condition(status.conditions, "PowerBudget")
            if obs.powered and not self._cooling_down(name, "GracefulShutdown"):
                await self._reset(name, bmc, "GracefulShutdown")
                events.append(_event(name, "Shutdown", "graceful shutdown requested"))
                return "GracefulShutdown"
            return None

        if obs.system.power_state != "Off":
            return None
        if self._cooling_down(name, "On"):
            return None
        async with self._budget_lock:
            allowed, message = await self._budget_allows(name, obs.chassis)
            if not allowed:
                set_condition(status.conditions, "PowerBudget", "False", "BusbarBudget", message)
                self._budget_line[name] = None
                events.append(
                    _event(name, "BusbarBudget", "waiting for busbar budget to power on", "Warning")
                )
                return None
            await self._reset(name, bmc, "On")
            self._draws.set(
                name,
                Draw(
                    phase="PoweringOn",
                    powered=True,
                    measured_watts=0.0,
                    max_watts=obs.chassis.max_power_watts,
                ),
            )
        self._wake_next()  # the budget may hold one more: let the next in line look
        set_condition(status.conditions, "PowerBudget", "True", "WithinBudget", message)
        events.append(_event(name, "PowerOn", "powered on"))
        return "On"

    async def _record_intent(self, unit: ComputeUnit, request: str) -> None:
        """Mark ``request`` as handled, and as pending until the BMC answers, before acting on
        it (fenced): the status write after the reset clears the pending mark."""
        intent = copy_model(unit)
        intent.status.last_power_cycle = request
        intent.status.pending_power_cycle = request
        recorded = await self._store.update_status(intent)
        unit.metadata.resource_version = recorded.metadata.resource_version
        unit.status.last_power_cycle = request
        unit.status.pending_power_cycle = request

    async def _resend_cycle(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        request: str,
        status: ComputeUnitStatus,
        events: list[Event],
    ) -> str | None:
        """A power cycle recorded but never known to have reached the BMC: a leader died (or
        its status write was lost) between the two. Send it again with the same key; a BMC
        that already got it answers without cycling the unit twice."""
        name = unit.metadata.name
        status.pending_power_cycle = None
        if self._cycled.get(name) == request:
            return None  # this controller sent it; only the write that said so was lost
        self._cycled[name] = request
        if unit.spec.power != "On":
            events.append(_event(name, "PowerCycleSkipped", f"power cycle {request}: spec is Off"))
            return None
        await self._send_cycle(
            unit, bmc, request, events, "sent again after a failover (done once by the BMC)"
        )
        return "PowerCycle"

    async def _send_cycle(
        self, unit: ComputeUnit, bmc: Bmc, request: str, events: list[Event], done: str
    ) -> None:
        """Send the reset of a recorded request, keyed by it; a failure is an event."""
        name = unit.metadata.name
        try:
            await self._reset(name, bmc, "PowerCycle", _cycle_key(unit, request))
        except RedfishClientError as exc:
            message = f"power cycle {request} failed: {exc}"
            events.append(_event(name, "PowerCycleFailed", message, "Warning"))
        else:
            events.append(_event(name, "PowerCycle", f"power cycle {request} {done}"))

    async def _budget_allows(self, name: str, chassis: ChassisView) -> tuple[bool, str]:
        try:
            rack = await self._store.get(Rack, self._rack_name)
        except NotFound:
            return True, f"no rack {self._rack_name!r} declared: no busbar budget to keep"
        rated = rack.spec.psu_rated_watts
        candidate = chassis.max_power_watts or DEFAULT_MAX_WATTS
        if not self._seeded:
            await self._seed_draws()
        projected = self._draws.projected(candidate, excluding=name)
        message = f"projected {projected:.2f} W of {rated:.2f} W rated"
        return projected <= rated, message

    async def _seed_draws(self) -> None:
        """Count units not observed yet by what their status last said (once: from then on
        every reconcile keeps the ledger current, so a decision needs no list)."""
        for other in await self._store.list(ComputeUnit):
            if other.metadata.name not in self._draws:
                self._draws.set(other.metadata.name, _draw_from_status(other.status))
        self._seeded = True

    # -- status -----------------------------------------------------------------------------

    def _fill_status(
        self,
        unit: ComputeUnit,
        obs: Observation,
        verdict: PhaseVerdict,
        status: ComputeUnitStatus,
        events: list[Event],
    ) -> None:
        name = unit.metadata.name
        previous = unit.status.phase
        status.phase = verdict.phase
        status.observed_generation = unit.metadata.generation
        if obs.system is not None:
            status.power_state = obs.system.power_state
            system = obs.system
            status.boot_progress = (
                system.boot_oem_last_state
                if system.boot_last_state == "OEM" and system.boot_oem_last_state
                else system.boot_last_state
            )
        env = obs.environment
        if env is not None:
            status.power_watts = _rounded(env.power_watts, 3)
            status.energy_joules = _rounded(env.energy_joules, 1)
            status.temperature_celsius = _rounded(env.temperature_celsius, 1)
        beat = self._heartbeats.latest(name)
        if beat is not None:
            status.last_heartbeat_time = beat.received_at
            status.agent_url = beat.body.agent_url
            status.os_version = beat.body.os_version
            if status.temperature_celsius is None:
                status.temperature_celsius = beat.body.temperature_celsius

        generation = unit.metadata.generation
        if verdict.happy:
            set_condition(
                status.conditions, "Ready", "True", "Running", verdict.message,
                observed_generation=generation,
            )  # fmt: skip
        else:
            set_condition(
                status.conditions, "Ready", "False", verdict.phase, verdict.message,
                observed_generation=generation,
            )  # fmt: skip
        had_missing = find_condition(status.conditions, "HeartbeatMissing")
        if verdict.heartbeat_missing:
            if had_missing is None or had_missing.status != "True":
                events.append(_event(name, "HeartbeatMissing", verdict.message, "Warning"))
            set_condition(
                status.conditions, "HeartbeatMissing", "True", "NoHeartbeat", verdict.message
            )
        elif had_missing is not None:
            set_condition(status.conditions, "HeartbeatMissing", "False", "HeartbeatSeen", "")
        if verdict.phase != previous:
            kind = "Warning" if verdict.phase in _WARNING_PHASES else "Normal"
            events.append(_event(name, verdict.phase, verdict.message, kind))


def _cycle_key(unit: ComputeUnit, request: str) -> str:
    """The ``Idempotency-Key`` of one power-cycle request: every controller derives the same."""
    return f"{unit.metadata.uid}/{request}"


def _settled(action: str, obs: Observation) -> bool:
    """Whether the observation already shows ``action`` done (no need to look again)."""
    if action == "GracefulShutdown":
        return obs.system is not None and not obs.powered
    if action == "On":
        return obs.powered
    return False  # a power cycle goes off and on again: follow it


def _event(name: str, reason: str, message: str, kind: str = "Normal") -> Event:
    return Event.about("ComputeUnit", name, reason, message, kind)  # type: ignore[arg-type]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _draw_from_status(status: ComputeUnitStatus) -> Draw:
    return Draw(
        phase=status.phase,
        powered=status.power_state in ("On", "PoweringOn"),
        measured_watts=status.power_watts or 0.0,
        max_watts=None,
    )
