"""The ComputeUnit reconciler: look at the unit, derive its phase, act, write status.

Level-triggered and idempotent: each run reads the unit's spec and looks at the unit afresh.
This module only sequences four parts, each in its own module:

* **observation** (:mod:`._unit_observe`): one look through the BMC, with the chassis cache,
  and :class:`UnitMemory`, everything remembered about one unit (one object per unit, so a
  deleted unit is forgotten by dropping it);
* **busbar admission** (:mod:`._admission`): a power-on goes ahead only if the unit's rack's
  budget holds it, else the unit waits in line with condition ``PowerBudget=False`` (reason
  ``BusbarBudget``); this staggers a rack's power-on. When the budget shrinks below what the
  rack asks for, a powered unit is capped through its BMC (``Capped``), shed (``Shed``), or
  has its cap lifted (``Uncapped``) as the plan says;
* **the exactly-once power cycle** (:mod:`._power_cycle`), one reset per
  ``racklet.dev/power-cycle-request`` value, across a failover;
* **status** (:mod:`._unit_status`): ``render_status``, a pure function of the observation,
  the verdict on it and the latest heartbeat, and ``write_status``, which writes that into the
  status and says which events it deserves.

A board inserted into a slot (the unit was Absent and its chassis is back) follows its
Rack's ``spec.newUnitPower``: ``On`` powers it on as above; ``Off`` — or ``AsBefore`` when it
was off when pulled — marks it :data:`~racklet.api.HELD_OFF_ANNOTATION` (condition
``PowerHold``) and it stays off until ``racklet power on`` removes the mark.

The actions: power on when ``spec.power`` is On and the unit is Off (if admitted); shut down
gracefully when ``spec.power`` is Off and it is powered (the BMC forces it off by itself
after a grace period); power-cycle on request; and, whatever the power, set the locate LED
and the boot override the spec asks for (:mod:`._unit_settings`). A power change someone made
at the BMC is recorded as an ``OutOfBandPowerChange`` event naming who, then reverted or left
standing per ``spec.powerPolicy`` (:mod:`._out_of_band`). With ``fence`` (an HA controller)
every reset is preceded by a check that this controller still holds the lead; a deposed leader
stops acting at once.

The phase comes only from the observation, never from the command just sent: after acting,
the reconciler looks at the unit again (system and metrics; the chassis read is reused) and
writes what that shows. When it already shows the action done — most BMCs report
``PowerState`` synchronously — there is no second reconcile; otherwise it looks again 0.2 s
later. A unit the spec wants on while its BMC is still shutting it down (off and on again
before the OS halted) is looked at again as often, so it powers on as soon as it is off
rather than at the next resync. Status is written only when something in it changed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from racklet.api import (
    ENROLL_APPROVED_ANNOTATION,
    HELD_OFF_ANNOTATION,
    ComputeUnit,
    ComputeUnitStatus,
    Event,
    Rack,
    find_condition,
    rack_of,
    remove_condition,
    set_condition,
)
from racklet.controller._heartbeats import HeartbeatRegistry
from racklet.controller._phase import Observation, derive_phase
from racklet.controller.reconcilers._admission import BusbarAdmission
from racklet.controller.reconcilers._out_of_band import OutOfBand
from racklet.controller.reconcilers._power_cycle import PowerCycles
from racklet.controller.reconcilers._unit_observe import Bmc, Inspector, UnitMemory
from racklet.controller.reconcilers._unit_settings import apply_settings
from racklet.controller.reconcilers._unit_status import (
    render_status,
    unit_event,
    working_copy,
    write_status,
)
from racklet.log import get_logger
from racklet.redfish import RedfishClientError
from racklet.store import NotFound, Store

__all__ = ["Bmc", "ComputeUnitReconciler", "UnitObserver"]

_FOLLOW_SECONDS = 0.2
"""How soon a reset still in progress is looked at again."""


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
        heartbeat_timeout: float | None = None,
        action_cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        observer: UnitObserver | None = None,
        fence: Callable[[], Awaitable[None]] | None = None,
        wake: Callable[[str], None] | None = None,
        identities: frozenset[str] = frozenset(),
        on_phase: Callable[[str, str], None] | None = None,
        new_board: Callable[[str], None] | None = None,
    ) -> None:
        """``identities``: who this rack's controllers are at a BMC (the SPIFFE ID of their
        client certificate), so their own resets are never taken for out-of-band changes.
        ``new_board``: told of a unit whose look shows its board may hold no identity of
        this rack (:func:`board_evidence`), so its certificates are seen to at once
        (:meth:`UnitCertificates.wake <racklet.controller._certificates.UnitCertificates.wake>`)."""
        self._store = store
        self._new_board = new_board
        self._fence = fence
        self._wake = wake
        self._on_phase = on_phase
        """Told (unit, new phase) after a phase change is written: what runs on a unit
        reacts at once rather than at its own next look (the MicroVMs)."""
        self._bmcs = bmcs
        self._heartbeats = heartbeats
        self._rack_name = rack_name  # units without a rack label are this rack's
        self._cooldown = action_cooldown
        self._clock = clock
        self._observer = observer
        self._inspector = Inspector(heartbeats, clock=clock, heartbeat_timeout=heartbeat_timeout)
        self._cycles = PowerCycles(store, self._reset)
        self._out_of_band = OutOfBand(identities, action_cooldown)
        self._units: dict[str, UnitMemory] = {}
        self._racks: dict[str, BusbarAdmission] = {}  # one busbar budget per rack
        self._log = get_logger("controller")

    async def reconcile(self, name: str) -> float | None:
        try:
            unit = await self._store.get(ComputeUnit, name)
        except NotFound:
            self._forget(name)
            return None
        memory = self._units.get(name)
        if memory is None:
            memory = self._units[name] = UnitMemory()
        budget = self._budget(unit, memory)
        budget.leave_line(name)  # back in line below only if refused again
        bmc = self._bmcs.get(name)
        obs = await self._inspector.look(name, bmc, memory)
        verdict = derive_phase(obs)
        budget.note(name, verdict.phase, obs)
        if self._new_board is not None and (why := board_evidence(unit, obs)) is not None:
            self._log.debug("%s: %s: its certificates are seen to now", name, why)
            self._new_board(name)

        status = working_copy(unit.status)
        events: list[Event] = []
        action: str | None = None
        chassis = obs.chassis
        if bmc is not None and obs.error is None and obs.system is not None:
            unit = await self._follow_slot(unit, memory, obs, events)
            await self._out_of_band.notice(unit, bmc, memory, obs, status, events, self._clock())
            action = await self._act(unit, bmc, memory, budget, obs, status, events)
            if chassis is not None and not chassis.absent:
                locate = chassis.locate
                if await apply_settings(unit, bmc, obs.system, locate, status, events):
                    memory.inventory, chassis = None, None  # read the LED again
                    action = action or "Settings"
        if action is not None:
            # Look again at once: a BMC that carried the action out already says so, and the
            # status then shows it without a second reconcile. The phase is still only what
            # was observed; a reset still in progress is looked at again shortly.
            obs = await self._inspector.look(name, bmc, memory, chassis=chassis)
            verdict = derive_phase(obs)
            if obs.system is not None:
                memory.powered = obs.powered  # what the next look compares with
            if action != "On" or obs.powered:  # keep the power-on's reserved draw till seen
                budget.note(name, verdict.phase, obs)

        rendered = render_status(obs, verdict, self._heartbeats.latest(name))
        events += write_status(status, rendered, name=name, generation=unit.metadata.generation)
        moved = status.phase != unit.status.phase
        if status != unit.status:
            unit.status = status
            await self._store.update_status(unit)
        if moved and self._on_phase is not None:
            self._on_phase(name, status.phase)
        for event in events:
            await self._store.record_event(event)
        if self._observer is not None:
            self._observer.unit(name, status)
        self._heartbeats.follow(name, budget.watching())
        if action is None or _settled(action, obs):
            follow = _FOLLOW_SECONDS if _on_waits_for_off(unit, obs) else None
            settle = budget.settle_in(name)  # caps wait for its draw read after their change
            return min((d for d in (follow, settle) if d is not None), default=None)
        return _FOLLOW_SECONDS

    def _budget(self, unit: ComputeUnit, memory: UnitMemory) -> BusbarAdmission:
        """The busbar admission of the unit's rack (leaving the old one's if it moved)."""
        rack = rack_of(unit, self._rack_name) or self._rack_name
        if memory.rack is not None and memory.rack != rack:
            self._racks[memory.rack].forget(unit.metadata.name)
        memory.rack = rack
        budget = self._racks.get(rack)
        if budget is None:
            home = self._rack_name
            budget = self._racks[rack] = BusbarAdmission(
                self._store,
                rack,
                member=lambda other: rack_of(other, home) == rack,
                wake=self._wake,
                clock=self._clock,
            )
        return budget

    def _forget(self, name: str) -> None:
        """A deleted unit: drop what was remembered and its draw from every budget."""
        self._units.pop(name, None)
        for budget in self._racks.values():
            budget.forget(name)

    # -- act --------------------------------------------------------------------------------

    def _cooling_down(self, memory: UnitMemory, action: str) -> bool:
        last = memory.last_action
        return last is not None and last[0] == action and self._clock() - last[1] < self._cooldown

    async def _reset(
        self, name: str, bmc: Bmc, memory: UnitMemory, reset_type: str, key: str | None = None
    ) -> None:
        if self._fence is not None:
            await self._fence()  # raises Fenced when another controller leads now
        await bmc.reset(name, reset_type, idempotency_key=key)
        memory.last_action = (reset_type, self._clock())
        memory.boot_mark = self._clock()
        self._log.info("%s: %s", name, reset_type, extra={"unit": name})

    async def _act(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        memory: UnitMemory,
        budget: BusbarAdmission,
        obs: Observation,
        status: ComputeUnitStatus,
        events: list[Event],
    ) -> str | None:
        """Act on the difference between spec and observation; return what was done."""
        name = unit.metadata.name
        assert obs.system is not None and obs.chassis is not None
        if obs.chassis.absent:
            return None
        request = self._cycles.requested(unit, status)
        if request is not None:
            return await self._cycles.handle(unit, bmc, memory, obs, request, status, events)
        if self._out_of_band.held(unit, memory):
            return None  # left as its operator set it (powerPolicy Observe)

        if unit.spec.power == "Off":
            remove_condition(status.conditions, "PowerBudget")
            if obs.powered and not self._cooling_down(memory, "GracefulShutdown"):
                await self._reset(name, bmc, memory, "GracefulShutdown")
                events.append(unit_event(name, "Shutdown", "graceful shutdown requested"))
                return "GracefulShutdown"
            return None

        if obs.system.power_state != "Off":
            return await self._govern(unit, bmc, memory, budget, status, events)
        if HELD_OFF_ANNOTATION in unit.metadata.annotations:
            message = f"inserted and held off: `racklet power on {name}` boots it"
            set_condition(status.conditions, "PowerHold", "True", "NewUnitPower", message)
            return None
        remove_condition(status.conditions, "PowerHold")
        if self._cooling_down(memory, "On"):
            return None

        async def power_on() -> None:
            await self._reset(name, bmc, memory, "On")

        admitted, message = await budget.admit(name, obs.chassis, power_on)
        if not admitted:
            set_condition(status.conditions, "PowerBudget", "False", "BusbarBudget", message)
            events.append(
                unit_event(name, "BusbarBudget", "waiting for busbar budget to power on", "Warning")
            )
            return None
        set_condition(status.conditions, "PowerBudget", "True", "WithinBudget", message)
        events.append(unit_event(name, "PowerOn", "powered on"))
        return "On"

    async def _follow_slot(
        self, unit: ComputeUnit, memory: UnitMemory, obs: Observation, events: list[Event]
    ) -> ComputeUnit:
        """Note how a board was when pulled, and hold an inserted one off if its Rack's
        ``newUnitPower`` says so (the mark is stored: a restarted controller keeps holding)."""
        assert obs.chassis is not None
        name = unit.metadata.name
        if obs.chassis.absent:
            if unit.status.phase != "Absent":  # just pulled: as it was a moment ago
                memory.powered_when_pulled = unit.status.power_state == "On"
            return unit
        if unit.status.phase != "Absent" or HELD_OFF_ANNOTATION in unit.metadata.annotations:
            return unit
        was_on, memory.powered_when_pulled = memory.powered_when_pulled, None
        rack_name = rack_of(unit, self._rack_name) or self._rack_name
        try:
            policy = (await self._store.get(Rack, rack_name)).spec.new_unit_power
        except NotFound:
            policy = "On"
        if policy == "On" or (policy == "AsBefore" and was_on is not False):
            return unit
        why = "newUnitPower is Off" if policy == "Off" else "it was off when it was pulled"
        unit.metadata.annotations[HELD_OFF_ANNOTATION] = why
        events.append(unit_event(name, "HeldOff", f"board inserted and held off: {why}"))
        return await self._store.update(unit)

    async def _govern(
        self,
        unit: ComputeUnit,
        bmc: Bmc,
        memory: UnitMemory,
        budget: BusbarAdmission,
        status: ComputeUnitStatus,
        events: list[Event],
    ) -> str | None:
        """This powered unit's part of the capping plan (:mod:`racklet.controller._shedding`)
        when its rack asks for more than its budget: cap it through its BMC, lift a cap no
        longer needed, or switch it off (shed: it powers on again through admission when the
        budget returns)."""
        name = unit.metadata.name
        if self._cooling_down(memory, "ForceOff"):
            return None

        async def power_off() -> None:
            await self._reset(name, bmc, memory, "ForceOff")

        verdict = await budget.govern(unit, power_off)
        capped = _reason(status) == "Capped"
        if verdict is None:
            if capped:  # the cap went while nothing was watching (a BMC restart): say so
                message = "no cap in force: the rack's budget holds it"
                set_condition(status.conditions, "PowerBudget", "True", "WithinBudget", message)
                events.append(unit_event(name, "Uncapped", message))
            return None
        if verdict.action == "shed":
            set_condition(status.conditions, "PowerBudget", "False", "Shed", verdict.message)
            events.append(unit_event(name, "Shed", verdict.message, "Warning"))
            return "ForceOff"
        if verdict.action != "hold":
            if self._fence is not None:
                await self._fence()
            try:
                await bmc.set_power_limit(name, verdict.watts)
            except RedfishClientError as exc:  # looked at again at the next resync
                self._log.warning(
                    "%s: cannot set its power limit: %s", name, exc, extra={"unit": name}
                )
                return None
            self._log.info("%s: %s", name, verdict.message, extra={"unit": name})
        if verdict.action == "uncap":
            set_condition(status.conditions, "PowerBudget", "True", "WithinBudget", verdict.message)
            events.append(unit_event(name, "Uncapped", verdict.message))
            return None
        # Capped: the event once per capping (not for every move of the cap), even if the
        # status write that carried it was lost: the condition says whether it was told.
        set_condition(status.conditions, "PowerBudget", "False", "Capped", verdict.message)
        if not capped:
            events.append(unit_event(name, "Capped", verdict.message, "Warning"))
        return None


def board_evidence(unit: ComputeUnit, obs: Observation) -> str | None:
    """Why this look suggests the unit's board may hold no identity of this rack (or one no
    longer good), or None. Each is cheap to act on (one unit's certificates read) and the
    certificate chore rate-limits its woken rounds, so a board that keeps giving evidence —
    a device failing TLS at every look — costs one unit's check per ``wake_gap``, no more."""
    if obs.error is not None:
        # A certificate refused at the handshake: expired over a long stop (the chore
        # reaches it by its recorded key), or no identity of this rack at all.
        return "its BMC's certificate is refused" if obs.untrusted else None
    if unit.status.phase == "Unknown":
        return "a ComputeUnit not looked at before"
    if unit.status.phase == "Absent" and obs.chassis is not None and not obs.chassis.absent:
        return "a board inserted into its slot"  # maybe a new one (racklet slot insert --new-board)
    enrolled = find_condition(unit.status.conditions, "Enrolled")
    if ENROLL_APPROVED_ANNOTATION in unit.metadata.annotations and (
        enrolled is not None and enrolled.status == "False"
    ):
        return "its enrolment was approved"
    return None


def _reason(status: ComputeUnitStatus) -> str | None:
    condition = find_condition(status.conditions, "PowerBudget")
    return None if condition is None else condition.reason


def _on_waits_for_off(unit: ComputeUnit, obs: Observation) -> bool:
    """Whether the spec asks for power while the BMC is still shutting the unit down (an
    operator powered it off and on again before the OS halted): the power-on it waits for
    is due the moment the BMC says Off, and nothing else would look before the next resync
    (a controller does not hear of a BMC's power state, it looks)."""
    return (
        unit.spec.power == "On"
        and obs.system is not None
        and obs.system.power_state == "PoweringOff"
    )


def _settled(action: str, obs: Observation) -> bool:
    """Whether the observation already shows ``action`` done (no need to look again)."""
    if action == "GracefulShutdown":
        return obs.system is not None and not obs.powered
    if action == "On":
        return obs.powered
    # PATCHed settings were read back: nothing to follow; a power cycle goes off and on again
    return action == "Settings"
