"""The Fault reconciler: asks the hardware side to apply a declared fault, then to clear it.

Level-triggered like every reconciler: a Pending fault waits for its start, picks its targets
(``select_targets`` over the stored units) and asks the control endpoint to inject it; an
Active one is asked for again on every look (the endpoint is idempotent per fault name, so a
restarted hardware side gets its faults back) until its duration ends or ``spec.cleared`` is
set; then it is cleared and stays as a record (Cleared). A deleted Fault is cleared too. A
refusal (missing unit, empty slot, an overlap, a kind this hardware cannot do) makes the
Fault Failed with the hardware side's reason in its ``Injected`` condition and an event;
an unreachable endpoint is retried.
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
    ) -> None:
        """``hardware`` None: the rack has no control endpoint (faults fail with that reason).
        ``wake(unit)`` queues a ComputeUnit: its units are looked at as soon as a fault
        clears (power back, link up), not at the next resync."""
        self._store = store
        self._hardware = hardware
        self._wake = wake
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
