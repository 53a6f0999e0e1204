"""One BMC as a host runs it: the service and its HTTPS listener, restartable as a unit.

A BMC restart (``Manager.Reset``, a firmware try-boot, a fallback after a failed self-test)
must look to clients like a real one: the listener goes away (connections drop), a fresh
service is built from the BMC's state dir (so the boot loader picks the slot again), and the
listener comes back on the same port. :class:`BmcHost` does that; the twin runs one per unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import replace

from racklet.bmc._service import BmcService, BmcSettings
from racklet.bmc._state.boot import BootStatus
from racklet.errors import RackletError
from racklet.hw import BmcBoard
from racklet.log import get_logger
from racklet.net import AppServer


class BmcHost:
    """Owns a :class:`BmcService` and its :class:`~racklet.net.AppServer`; restarts both."""

    def __init__(
        self,
        board: BmcBoard,
        settings: BmcSettings,
        *,
        port: int,
        ssl_context: Callable[[], ssl.SSLContext],
        host: str = "127.0.0.1",
    ) -> None:
        """``ssl_context`` is called at every start: a restarted BMC loads its certificate
        afresh, as a rebooted one would."""
        self._board = board
        self._settings = replace(settings, restart=self.request_restart)
        self._port = port
        self._host = host
        self._ssl_context = ssl_context
        self._log = get_logger("bmc", unit=settings.unit)
        self.service: BmcService | None = None
        self._server: AppServer | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._again = False
        self._hung: BootStatus | None = None
        self.restarts = 0

    async def start(self) -> None:
        service = BmcService(self._board, self._settings)
        await service.start()
        server = AppServer(
            service.app,
            port=self._port,
            host=self._host,
            ssl_context=self._ssl_context(),
            name=f"bmc:{self._settings.unit}",
        )
        try:
            await server.start()
        except BaseException:
            await service.stop()
            raise
        self.service, self._server = service, server

    def close_streams(self) -> None:
        if self.service is not None:
            self.service.close_streams()

    async def _stop_instance(self) -> None:
        service, server = self.service, self._server
        self.service, self._server = None, None
        if service is not None:
            service.close_streams()  # open SSE streams would hold the server's shutdown
        if server is not None:
            await server.stop()
        if service is not None:
            await service.stop()

    async def stop(self) -> None:
        restarting, self._restarting = self._restarting, None
        if restarting is not None:
            restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restarting
        await self._stop_instance()

    async def hang(self) -> None:
        """Stop answering, as a hung BMC does (the fault engine's BMC hang); the host's boot
        state is kept for :meth:`resume`, since the unit runs on meanwhile."""
        if self.service is not None:
            self._hung = self.service.context.boot
        await self._stop_instance()

    async def resume(self) -> None:
        """Answer again after :meth:`hang`, with the boot state the unit had reached."""
        if self.service is not None:
            return
        await self.start()
        hung, self._hung = self._hung, None
        if hung is not None and self.service is not None:
            self.service.context.boot.carry_over(hung)

    def request_restart(self) -> None:
        """Restart soon (in a task this host owns); the caller's request finishes first. A
        request during a restart (the new firmware failing at once) restarts once more."""
        if self._restarting is not None and not self._restarting.done():
            self._again = True
            return
        self._restarting = asyncio.create_task(
            self._restart(), name=f"bmc:{self._settings.unit}:restart"
        )

    async def _restart(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            await asyncio.sleep(0)  # let the answer of the request that asked for it go out
            if not await self._restart_once():
                return

    async def _restart_once(self) -> bool:
        self._log.info("BMC restarting")
        before = self.service.context.boot if self.service is not None else None
        await self._stop_instance()
        try:
            await self.start()
        except (OSError, RackletError) as exc:
            self._log.error(f"BMC did not come back after a restart: {exc}")
            return False
        if before is not None and self.service is not None:
            self.service.context.boot.carry_over(before)  # the host ran on meanwhile
        self.restarts += 1
        self._log.info("BMC restarted")
        return True
