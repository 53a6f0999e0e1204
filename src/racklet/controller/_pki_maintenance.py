"""PKI maintenance: renew identities under 1/3 of their lifetime and keep the CRL fresh.

A periodic chore (:class:`racklet.controller._periodic.Periodic`) over the state dir's files;
two controllers renewing the same files would race, so the process runs it as a leader-only
service. Renewed certificates are written in place; listeners and the controller's own clients
follow their files (:mod:`racklet.net`), so a renewed certificate or a new CRL is in use within
seconds, without a restart. Not here: unit identities held by
BMCs (:mod:`racklet.controller._certificates`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from racklet.controller._periodic import LoopObserver, Periodic
from racklet.log import get_logger
from racklet.pki import PkiError, RackCA, refresh_crl, renew_due

log = get_logger("controller")


class PkiMaintenance:
    def __init__(
        self,
        state_dir: Path,
        *,
        interval_seconds: float = 3600.0,
        observer: LoopObserver | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._loop = Periodic(
            "pki-maintenance",
            self._round,
            interval=interval_seconds,
            retry=min(60.0, interval_seconds),
            observer=observer,
        )

    def run_once(self) -> list[Path]:
        """One round (blocking file I/O and signing): the renewed certificates."""
        ca = RackCA.load(self._state_dir / "pki")
        renewed = renew_due(ca, self._state_dir)
        refresh_crl(ca, self._state_dir / "pki")
        return renewed

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _round(self) -> bool:
        try:
            renewed = await asyncio.to_thread(self.run_once)
        except (PkiError, OSError) as exc:
            log.warning("PKI maintenance failed: %s", exc)
            return False
        for path in renewed:
            log.info("renewed %s", path)
        return True
