"""Periodic chores of the management side that are not reconcilers of one object.

Today one: keep the TUF repository's short-lived roles (timestamp, snapshot) fresh, so a
unit never sees an expired timestamp just because nobody published for a day. Signing and
file writes run in a thread; a failure is logged and retried with back-off
(:class:`racklet.controller._periodic.Periodic`). Two controllers re-signing at once would
race, so the process runs it as a leader-only service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from racklet.boot import RepositoryError, TufRepository, refresh_timestamp
from racklet.controller._periodic import LoopObserver, Periodic
from racklet.log import get_logger

log = get_logger("controller")

REFRESH_SECONDS = 600.0


class TufRefresher:
    def __init__(
        self,
        boot_dir: Path,
        period: float = REFRESH_SECONDS,
        *,
        observer: LoopObserver | None = None,
    ) -> None:
        self._boot_dir = boot_dir
        self._loop = Periodic(
            "tuf-refresh", self._round, interval=period, retry=min(60.0, period), observer=observer
        )

    async def start(self) -> None:
        if (self._boot_dir / "repository.json").exists():
            await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def _refresh(self) -> bool:
        return refresh_timestamp(TufRepository.open(self._boot_dir))

    async def _round(self) -> bool:
        try:
            if await asyncio.to_thread(self._refresh):
                log.info("re-signed the TUF timestamp and snapshot")
        except RepositoryError as exc:
            log.error("TUF refresh failed: %s", exc)
            return False
        return True
