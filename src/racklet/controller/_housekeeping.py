"""Periodic chores of the management side that are not reconcilers of one object.

Today one: keep the TUF repository's short-lived roles (timestamp, snapshot) fresh, so a
unit never sees an expired timestamp just because nobody published for a day. Signing and
file writes run in a thread; a failure is logged and retried at the next period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from racklet.boot import RepositoryError, TufRepository, refresh_timestamp
from racklet.log import get_logger
from racklet.tasks import OwnedTask

log = get_logger("controller")

REFRESH_SECONDS = 600.0


class TufRefresher:
    def __init__(
        self,
        boot_dir: Path,
        period: float = REFRESH_SECONDS,
        *,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._boot_dir = boot_dir
        self._period = period
        self._is_leader = is_leader  # two controllers re-signing at once would race
        self._task = OwnedTask("controller:tuf-refresh")

    async def start(self) -> None:
        if (self._boot_dir / "repository.json").exists():
            self._task.start(self._loop)

    async def stop(self) -> None:
        await self._task.stop()

    def _refresh(self) -> bool:
        return refresh_timestamp(TufRepository.open(self._boot_dir))

    async def _loop(self) -> None:
        while True:
            try:
                if self._is_leader() and await asyncio.to_thread(self._refresh):
                    log.info("re-signed the TUF timestamp and snapshot")
            except RepositoryError as exc:
                log.error(f"TUF refresh failed, retrying in {self._period:g} s: {exc}")
            await asyncio.sleep(self._period)
