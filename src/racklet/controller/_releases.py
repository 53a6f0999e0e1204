"""Wiring for releases and rollouts: what the controller process adds to its registry.

Kept apart from ``_main`` so the trust-chain work plugs in with a few lines there: the
Release and Rollout reconcilers (PKI maintenance has its own module, ``_pki_maintenance``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from racklet.api import Release, Rollout
from racklet.controller._runtime import Registry
from racklet.controller.reconcilers._release import Channels, ReleaseReconciler, TufChannels
from racklet.controller.rollout import BmcFirmwareTarget, FirmwareBmc, RolloutReconciler
from racklet.store import Store


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
