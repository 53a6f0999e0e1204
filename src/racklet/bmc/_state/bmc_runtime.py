"""The running BMC's side of its firmware A/B: boot a slot, self-test a trial, commit or fall
back, and ask its host for a restart.

A restart is the host's job (:class:`racklet.bmc.BmcHost` stops the listener and the service
and starts fresh ones, so clients see the connection drop), because a service cannot restart
the server that serves it. Without a host the service restarts itself in place.

The self-test is what a real BMC checks before it trusts new firmware: its own Redfish
service answers (the real app, in process) and its hardware backend reads (presence and the
power monitor). It runs within ``deadline`` seconds. Nothing in the image decides the outcome:
a trial fails when those checks really fail (in the twin, e.g. a board whose power monitor
NACKs), so this code runs unchanged on a real BMC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from starlette.types import ASGIApp

from racklet.bmc._state.bmc_slots import BmcFirmwareSlots, SlotName
from racklet.bmc.errors import BmcError
from racklet.hw import BmcBoard
from racklet.log import ContextLogger
from racklet.tasks import OwnedTask

SELF_TEST_DEADLINE = 30.0
"""Host seconds a trial firmware has to pass its self-test before the BMC falls back."""


class SelfTestFailed(BmcError):
    """The trial firmware failed a self-test check."""


class BmcFirmware:
    """Owns the slots of one BMC run and the trial's self-test task."""

    def __init__(
        self,
        state_dir: Path,
        factory_version: str,
        log: ContextLogger,
        *,
        restart: Callable[[], None],
        deadline: float = SELF_TEST_DEADLINE,
    ) -> None:
        self.slots = BmcFirmwareSlots(state_dir, factory_version)
        self._log = log
        self._restart = restart
        self._deadline = deadline
        self._task = OwnedTask("bmc:self-test")
        self.lock = asyncio.Lock()
        """Held while a slot is written or armed: one firmware change at a time."""

    async def boot(self) -> SlotName:
        slot = await asyncio.to_thread(self.slots.boot)
        trial = " (on trial)" if self.slots.trying else ""
        self._log.info(f"BMC firmware slot {slot}, version {self.slots.running_version}{trial}")
        return slot

    def start_self_test(self, app: ASGIApp, board: BmcBoard) -> None:
        if self.slots.trying is not None:
            self._task.start(lambda: self._self_test(app, board), f"bmc:{board.unit}:self-test")

    async def stop(self) -> None:
        await self._task.stop()

    async def install(self, image: Path, version: str) -> SlotName | None:
        """Write a verified image to the standby slot (None: already running or armed)."""
        async with self.lock:
            return await asyncio.to_thread(self.slots.install, image, version)

    async def reset(self) -> SlotName | None:
        """Arm a try-boot of a staged image (if any) and restart; the slot armed."""
        async with self.lock:
            armed = await asyncio.to_thread(self.slots.arm_tryboot)
        self._log.info(
            f"BMC reset: try-booting slot {armed}" if armed else "BMC reset (no new firmware)"
        )
        self._restart()
        return armed

    async def _self_test(self, app: ASGIApp, board: BmcBoard) -> None:
        version = self.slots.running_version
        try:
            async with asyncio.timeout(self._deadline):
                await self._checks(app, board)
        except (SelfTestFailed, TimeoutError) as exc:
            reason = f"self-test: {exc}" if str(exc) else "self-test: deadline passed"
            self._log.warning(f"firmware {version} failed its {reason}; falling back")
            async with self.lock:
                await asyncio.to_thread(self.slots.fail, reason)
            self._restart()
            return
        async with self.lock:
            await asyncio.to_thread(self.slots.commit)
        self._log.info(f"firmware {version} passed its self-test: committed")

    async def _checks(self, app: ASGIApp, board: BmcBoard) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://bmc.local") as http:
            response = await http.get("/redfish/v1/")
        if response.status_code != 200:
            raise SelfTestFailed(f"the Redfish service root answered {response.status_code}")
        try:
            await asyncio.to_thread(board.presence.is_present)
            await asyncio.to_thread(board.power_monitor.read)
        except OSError as exc:
            raise SelfTestFailed(f"the hardware backend does not read: {exc}") from exc
