"""Wiring for releases and rollouts: what the controller process adds to its registry.

Kept apart from ``_main`` so the trust-chain work plugs in with a few lines there: the
Release and Rollout reconcilers, and :class:`PkiMaintenance` (automatic renewal).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from racklet.api import Release, Rollout
from racklet.controller._runtime import Registry
from racklet.controller.reconcilers._release import Channels, ReleaseReconciler, TufChannels
from racklet.controller.rollout import BmcFirmwareTarget, FirmwareBmc, RolloutReconciler
from racklet.log import get_logger
from racklet.pki import PkiError, RackCA, refresh_crl, renew_due
from racklet.store import Store
from racklet.tasks import OwnedTask

log = get_logger("controller")


def register_release_reconcilers(
    registry: Registry,
    store: Store,
    boot_dir: Path,
    *,
    enqueue: Callable[[str, str], None] | None = None,
    clock: Callable[[], float] = time.time,
    channels: Channels | None = None,
    bmcs: Mapping[str, FirmwareBmc] | None = None,
) -> Channels:
    """Register the Release and Rollout reconcilers over the TUF repository in ``boot_dir``.

    With ``bmcs`` (unit name to its BMC's Redfish client), Rollouts of the ``bmc-firmware``
    channel push BMC firmware through each BMC's UpdateService.
    """
    channels = channels or TufChannels(boot_dir)
    bmc_firmware = BmcFirmwareTarget(bmcs, boot_dir) if bmcs else None
    registry.register(Release, ReleaseReconciler(store, channels))
    registry.register(
        Rollout,
        RolloutReconciler(store, channels, clock=clock, enqueue=enqueue, bmc_firmware=bmc_firmware),
    )
    return channels


class PkiMaintenance:
    """A periodic, owned task: renew identities under 1/3 of their lifetime, keep the CRL fresh.

    Renewed certificates are written in place; a process picks its new one up when it restarts
    (listeners do not reload TLS contexts on the fly).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        interval_seconds: float = 3600.0,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._state_dir = state_dir
        self._interval = interval_seconds
        self._is_leader = is_leader  # two controllers renewing the same files would race
        self._task = OwnedTask("controller:pki-maintenance")

    def run_once(self) -> list[Path]:
        """One round (blocking file I/O and signing): the renewed certificates."""
        ca = RackCA.load(self._state_dir / "pki")
        renewed = renew_due(ca, self._state_dir)
        refresh_crl(ca, self._state_dir / "pki")
        return renewed

    async def start(self) -> None:
        self._task.start(self._loop)

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        while True:
            if not self._is_leader():
                await asyncio.sleep(self._interval)
                continue
            try:
                renewed = await asyncio.to_thread(self.run_once)
            except (PkiError, OSError) as exc:
                log.warning("PKI maintenance failed: %s", exc)
            else:
                for path in renewed:
                    log.info("renewed %s (processes load it at their next start)", path)
            await asyncio.sleep(self._interval)
