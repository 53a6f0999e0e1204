"""The Fault reconciler: asks the hardware side to apply a declared fault, then to clear it.

Level-triggered like every reconciler: a Pending fault waits for its start, picks its targets
(``select_targets`` over the stored units) and asks the control endpoint to inject it; an
Active one is asked for again on every look (the endpoint is idempotent per fault name, so a
restarted hardware side gets its faults back) until its duration ends or ``spec.cleared`` is
set; then it is cleared and stays as a record (Cleared). A deleted Fault is cleared too. A
refusal (missing unit, empty slot, an overlap, a kind this hardware cannot do) makes the
Fault Failed with the hardware side's reason in its ``Injected`` condition and an event;
an unreachable endpoint is retried.

A ``ControllerCrash`` is not the hardware's to do: the reconciler records the fault Active,
naming this controller process (``status.crashedController``), *then* asks its supervisor
(``crash``) to kill it. The controller that reconciles the fault next is another process:
it finds another name on record, so the crash happened, and reports the fault Cleared — a
crash is one-shot, never repeated by the controller it restarted. Without a supervisor to
restart it the fault is refused (a crash would leave the rack unmanaged until someone came).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal, Protocol

from racklet.api import (
    RACK_WIDE,
    ComputeUnit,
    Event,
    Fault,
    parse_duration,
    select_targets,
    set_condition,
    utcnow,
)
from racklet.controller._hardware import HardwareRefused, HardwareUnreachable
from racklet.controller.errors import TemporaryError
from racklet.log import get_logger
from racklet.store import NotFound, Store

RETRY_SECONDS = 2.0
CRASH_DEADLINE_SECONDS = 30.0
"""A controller still alive this long after asking to be crashed gives up: Failed."""


class Hardware(Protocol):
    """What the reconciler needs of :class:`~racklet.controller._hardware.HardwareControl`."""

    async def inject(
        self, fault_id: str, kind: str, params: dict[str, object], targets: list[str]
    ) -> dict[str, object]: ...
    async def clear(self, fault_id: str) -> bool: ...


class FaultReconciler:
    def __init__(
        self,
        store: Store,
        hardware: Hardware | None,
        *,
        wake: Callable[[str], None] | None = None,
        identity: str = "",
        crash: Callable[[], None] | None = None,
    ) -> None:
        """``hardware`` None: the rack has no control endpoint (faults fail with that reason).
        ``wake(unit)`` queues a ComputeUnit: its units are looked at as soon as a fault
        clears (power back, link up), not at the next resync. ``identity``: this controller
        process; ``crash()`` asks its supervisor to kill it (None: nothing would restart it)."""
        self._store = store
        self._hardware = hardware
        self._wake = wake
        self._identity = identity
        self._crash = crash
        self._log = get_logger("controller")

    async def reconcile(self, name: str) -> float | None:
        try:
            fault = await self._store.get(Fault, name)
        except NotFound:
            await self._clear(name)  # deleted: whatever it did is undone
            return None
        phase = fault.status.phase
        if phase in ("Cleared", "Failed"):
            return None
        if fault.spec.type == "ControllerCrash" and not fault.spec.cleared:
            return await self._controller_crash(fault)
        if self._hardware is None:
            await self._fail(fault, "NoControlEndpoint", "this rack has no control endpoint")
            return None
        now = utcnow()
        if phase == "Active":
            if fault.spec.cleared or self._expired(fault, now):
                await self._clear(name)
                await self._wake_targets(fault)
                why = "cleared on request" if fault.spec.cleared else "its duration ended"
                await self._set(fault, "Cleared", "Cleared", "True", "Cleared", why, now=now)
                return None
            await self._inject(fault, fault.status.targets)  # level-triggered: still applied
            return self._remaining(fault, now)
        # Pending
        if fault.spec.cleared:
            await self._set(
                fault, "Cleared", "Cleared", "True", "Cleared", "cleared before it began"
            )
            return None
        begin = self._begin(fault)
        if now < begin:
            return (begin - now).total_seconds()
        if fault.spec.type in RACK_WIDE:
            targets: list[str] = []
        else:
            units = await self._store.list(ComputeUnit)
            targets = select_targets(fault.spec.selector, units)
            if not targets:
                await self._fail(fault, "NoTargets", "the selector matches no unit")
                return None
        try:
            applied = await self._inject(fault, targets)
        except HardwareRefused as exc:
            await self._fail(fault, "Refused", str(exc))
            return None
        fault.status.targets = targets
        fault.status.start_time = now
        message = str(applied.get("message") or "injected")
        where = ", ".join(targets) or "the rack"
        await self._set(fault, "Active", "Injected", "True", "Injected", f"{where}: {message}")
        return self._remaining(fault, now)

    async def _controller_crash(self, fault: Fault) -> float | None:
        now = utcnow()
        status = fault.status
        if status.phase == "Active" and status.crashed_controller != self._identity:
            # Another process acts now: the one on record was crashed and this one replaced it.
            why = f"the controller came back after the crash ({self._identity} acts now)"
            await self._set(fault, "Cleared", "Cleared", "True", "Restarted", why, now=now)
            return None
        if self._crash is None:
            await self._fail(
                fault,
                "NoSupervisor",
                "ControllerCrash needs a supervisor that restarts the controller (racklet up "
                "is one); nothing would restart this one, so it is not crashed",
            )
            return None
        if status.phase == "Pending":
            begin = self._begin(fault)
            if now < begin:
                return (begin - now).total_seconds()
            status.crashed_controller = self._identity
            status.start_time = now
            message = (
                f"its supervisor kills controller {self._identity} (SIGKILL) and restarts "
                "it; the hardware runs on"
            )
            await self._set(fault, "Active", "Injected", "True", "Injected", message, now=now)
        elif status.start_time is not None and (
            (now - status.start_time).total_seconds() > CRASH_DEADLINE_SECONDS
        ):
            await self._fail(fault, "NotCrashed", "the supervisor did not kill the controller")
            return None
        self._crash()  # recorded first: whoever reconciles this next knows it happened
        return 1.0  # still here a second later: ask again

    async def _inject(self, fault: Fault, targets: list[str]) -> dict[str, object]:
        assert self._hardware is not None
        try:
            return await self._hardware.inject(
                fault.metadata.name, fault.spec.type, dict(fault.spec.params), targets
            )
        except HardwareUnreachable as exc:
            raise TemporaryError(str(exc), RETRY_SECONDS) from exc

    async def _clear(self, name: str) -> None:
        if self._hardware is None:
            return
        try:
            await self._hardware.clear(name)
        except HardwareUnreachable as exc:
            raise TemporaryError(str(exc), RETRY_SECONDS) from exc

    async def _wake_targets(self, fault: Fault) -> None:
        if self._wake is None:
            return
        names = fault.status.targets
        if not names:  # a rack-wide fault: every unit
            names = [unit.metadata.name for unit in await self._store.list(ComputeUnit)]
        for unit in names:
            self._wake(unit)

    @staticmethod
    def _begin(fault: Fault) -> dt.datetime:
        start = fault.spec.start
        if start.at is not None:
            return start.at
        created = fault.metadata.creation_timestamp or utcnow()
        if start.after is not None:
            return created + dt.timedelta(seconds=parse_duration(start.after))
        return created

    @staticmethod
    def _expired(fault: Fault, now: dt.datetime) -> bool:
        remaining = FaultReconciler._remaining(fault, now)
        return remaining is not None and remaining <= 0

    @staticmethod
    def _remaining(fault: Fault, now: dt.datetime) -> float | None:
        if fault.spec.duration is None or fault.status.start_time is None:
            return None
        end = fault.status.start_time + dt.timedelta(seconds=parse_duration(fault.spec.duration))
        return max(0.0, (end - now).total_seconds())

    async def _fail(self, fault: Fault, reason: str, message: str) -> None:
        await self._set(fault, "Failed", "Injected", "False", reason, message, warning=True)

    async def _set(
        self,
        fault: Fault,
        phase: Literal["Active", "Cleared", "Failed"],
        condition: str,
        state: Literal["True", "False"],
        reason: str,
        message: str,
        *,
        now: dt.datetime | None = None,
        warning: bool = False,
    ) -> None:
        status = fault.status
        status.phase = phase
        status.message = message
        status.observed_generation = fault.metadata.generation
        if phase == "Cleared":
            status.clear_time = now or utcnow()
        set_condition(
            status.conditions,
            condition,
            state,
            reason,
            message,
            observed_generation=fault.metadata.generation,
        )
        await self._store.update_status(fault)
        await self._store.record_event(
            Event.about(
                "Fault",
                fault.metadata.name,
                reason,
                message,
                type="Warning" if warning else "Normal",
            )
        )
        self._log.info(f"fault {fault.metadata.name} ({fault.spec.type}) {phase}: {message}")
