"""Rollouts of BMC firmware: the ``bmc-firmware`` channel's releases, pushed BMC by BMC.

The rollout's rules are the unit-OS ones (a canary, then batches of
``min(batchSize, maxUnavailable)``, the health deadline, pause and rollback on failure); only
what "updating one unit" means differs. Here it is, per BMC:

1. **Push**: the release's signed image goes to the BMC's standby slot through Redfish
   ``UpdateService`` (multipart push, the image with the TUF metadata that vouches for it,
   which the BMC checks against its own TUF root). ``@Redfish.OperationApplyTime`` is
   ``Immediate``: the BMC restarts into the new slot on its own, so the controller needs no
   ``ConfigureManager`` privilege (its certificate login is an Operator).
2. **Wait**: the unit is ``Updated`` when its BMC answers again running the release's version
   *committed* (its self-test passed). It is ``Failed`` when the push is refused, when the BMC
   reports the image given up (it fell back by itself), or at ``healthDeadlineSeconds``.
3. **Rollback** needs no push: a BMC whose new firmware failed is already back on its
   committed slot. Rolling back points the channel back (if it named a release before) and
   waits until each failed BMC runs a committed version other than the new one. BMCs that
   committed the new release keep it: the BMC's floor forbids going below a committed version.

Deliberately not here: ``SimpleUpdate`` (the BMC would fetch from a URL; a push needs no
route from the BMC to the boot server, and the BMC opens no connections on a client's word).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from racklet.api import ComputeUnit, Release, UnitRollout, remove_condition
from racklet.bmc import firmware_oem_parameters
from racklet.boot import BootError, TufRepository
from racklet.controller.errors import TemporaryError
from racklet.redfish import RedfishClientError
from racklet.redfish._client import BmcFirmwareView

if TYPE_CHECKING:
    from racklet.controller.reconcilers._rollout import _Pass

CHANNEL = "bmc-firmware"


class FirmwareBmc(Protocol):
    """The part of :class:`racklet.redfish.RedfishClient` a BMC firmware rollout uses."""

    async def bmc_firmware(self) -> BmcFirmwareView: ...

    async def push_bmc_firmware(
        self, image: bytes, oem_parameters: dict[str, Any], *, apply_time: str = "Immediate"
    ) -> str: ...

    async def task_outcome(self, monitor: str) -> str | None: ...


class BmcFirmwareRollouts:
    """Drives the ``bmc-firmware`` rollouts over the BMCs' Redfish clients (by unit name)."""

    def __init__(self, bmcs: Mapping[str, FirmwareBmc], boot_dir: Path) -> None:
        self._bmcs = bmcs
        self._boot_dir = boot_dir

    async def run(self, step: _Pass, release: Release) -> float | None:
        status = step.status
        if status.phase == "Pending":
            return await self._start(step, release)
        remove_condition(status.conditions, "Stalled")
        if status.phase == "RollingBack":
            return await self._roll_back(step, release)
        if step.spec.paused:
            if status.phase != "Paused":
                status.phase = "Paused"
                step.condition("Progressing", "False", "Paused", "spec.paused is true")
                step.event("Paused", "paused by spec.paused")
            return None
        if status.phase == "Paused":
            status.phase = "Progressing"
            step.event("Resumed", "spec.paused is false again")
        return await self._progress(step, release)

    async def _view(self, name: str) -> BmcFirmwareView | None:
        bmc = self._bmcs.get(name)
        if bmc is None:
            return None
        try:
            return await bmc.bmc_firmware()
        except RedfishClientError:
            return None  # restarting, or unreachable: judged by the deadline

    # -- starting ---------------------------------------------------------------------------

    async def _start(self, step: _Pass, release: Release) -> float | None:
        spec = release.spec
        signed = await step.o._channels.published(spec.channel, spec.package, spec.version)
        if signed is None:
            message = f"{spec.package} {spec.version} is not signed in channel {spec.channel}"
            return step.stalled("ReleaseNotPublished", message)
        if len(signed) != 1:
            message = (
                f"a BMC firmware release has exactly one image; {spec.version} has {len(signed)}"
            )
            return step.stalled("NotFirmware", message)
        if step.spec.max_unavailable == 0:
            return step.stalled("InvalidStrategy", "maxUnavailable 0 leaves no BMC to update")
        units = await step.o._store.list(ComputeUnit, step.spec.selector)
        if not units:
            return step.stalled("NoUnits", f"no unit matches selector {step.spec.selector}")
        names = [
            u.metadata.name for u in sorted(units, key=lambda u: (u.spec.slot, u.metadata.name))
        ]
        missing = [n for n in names if n not in self._bmcs]
        if missing:
            return step.stalled("NoBmcClient", f"no Redfish client for {', '.join(missing)}")
        rival = await step._overlapping(set(names))
        if rival is not None:
            message = f"units overlap rollout {rival}, which is running; wait for it or delete it"
            step.status.phase = "Failed"
            remove_condition(step.status.conditions, "Stalled")
            step.condition("Accepted", "False", "OverlappingRollout", message)
            step.event("OverlappingRollout", message, "Warning")
            return None
        views = await asyncio.gather(*(self._view(n) for n in names))
        step.status.units = [
            UnitRollout(name=n, phase="Updated" if _runs(v, spec.version) else "Pending")
            for n, v in zip(names, views, strict=True)
        ]
        step.status.channel = spec.channel
        step.status.previous = await step.o._channels.current(spec.channel)
        step.status.phase = "Progressing"
        remove_condition(step.status.conditions, "Stalled")
        step.condition("Accepted", "True", "Started", f"{len(names)} BMC(s) selected")
        step.event("Started", f"updating {len(names)} BMC(s) to {spec.package} {spec.version}")
        return 0.0

    # -- progressing ------------------------------------------------------------------------

    async def _progress(self, step: _Pass, release: Release) -> float | None:
        spec = release.spec
        await step._ensure_channel(spec.package, spec.version)
        now = step.o._clock()
        for entry in step.status.units:
            if entry.phase == "Updating":
                await self._judge(step, entry, spec.version, now)
        failed = [u.name for u in step.status.units if u.phase == "Failed"]
        if failed:
            return self._on_failure(step, failed, spec.version)
        if any(u.phase == "Updating" for u in step.status.units):
            return step.o._poll
        pending = [u for u in step.status.units if u.phase == "Pending"]
        if not pending:
            step.status.phase = "Complete"
            message = f"{len(step.status.units)} BMC(s) run {spec.package} {spec.version}"
            step.condition("Progressing", "False", "Complete", message)
            step.condition("Complete", "True", "AllUnitsUpdated", message)
            step.event("Complete", message)
            return None
        canary = step.status.current_batch == 0 and step.spec.canary > 0
        size = step.spec.canary if canary else min(step.spec.batch_size, step.spec.max_unavailable)
        batch = pending[:size]
        step.status.current_batch += 1
        image, oem = await self._image(release)
        for entry in batch:
            await self._push(step, entry, image, oem, now)
        label = "canary" if canary else f"batch {step.status.current_batch}"
        names = ", ".join(u.name for u in batch)
        step.condition("Progressing", "True", "BatchStarted", f"{label}: {names}")
        step.event("BatchStarted", f"{label}: pushing BMC firmware {spec.version} to {names}")
        return step.o._poll

    async def _image(self, release: Release) -> tuple[bytes, dict[str, Any]]:
        """The signed image and the TUF metadata that vouches for it (from the repository)."""
        spec = release.spec

        def read() -> tuple[bytes, dict[str, Any]]:
            repo = TufRepository.open(self._boot_dir)
            found = next(
                r
                for r in repo.list()
                if (r.channel, r.name, r.version) == (spec.channel, spec.package, spec.version)
            )
            target = found.files[0]
            stored = repo.targets_dir / os.path.dirname(target.target_path)
            image = (stored / f"{target.sha256}.{target.name}").read_bytes()
            return image, firmware_oem_parameters(repo.metadata_dir, target.target_path)

        try:
            return await asyncio.to_thread(read)
        except (BootError, OSError, StopIteration, KeyError, ValueError) as exc:
            raise TemporaryError(
                f"cannot read BMC firmware {spec.version}: {exc}", delay=5.0
            ) from exc

    async def _push(
        self, step: _Pass, entry: UnitRollout, image: bytes, oem: dict[str, Any], now: float
    ) -> None:
        entry.phase, entry.started = "Updating", now
        try:
            entry.request = await self._bmcs[entry.name].push_bmc_firmware(image, oem)
        except RedfishClientError as exc:
            entry.phase, entry.message = "Failed", f"push refused: {exc}"
            step.event("UnitFailed", f"{entry.name}: {entry.message}", "Warning")
            return
        entry.message = "pushed; the BMC try-boots it"

    async def _judge(self, step: _Pass, entry: UnitRollout, version: str, now: float) -> None:
        bmc = self._bmcs[entry.name]
        outcome = None
        if entry.request:
            try:
                outcome = await bmc.task_outcome(entry.request)
            except RedfishClientError:
                outcome = None  # the BMC is restarting
        view = await self._view(entry.name)
        if _runs(view, version):
            entry.phase, entry.message = "Updated", f"BMC runs {version}, committed"
            step.event("UnitUpdated", f"{entry.name}: BMC runs {version}")
            return
        if outcome not in (None, "OK"):
            entry.phase, entry.message = "Failed", f"update task failed: {outcome}"
        elif view is not None and view.standby_version == version and view.standby_failure:
            entry.phase = "Failed"
            entry.message = f"fell back to {view.version}: {view.standby_failure}"
        elif entry.started is not None and now - entry.started > step.spec.health_deadline_seconds:
            seen = view.version if view is not None else "no answer"
            entry.phase = "Failed"
            entry.message = (
                f"BMC not on {version} committed within "
                f"{step.spec.health_deadline_seconds:g} s ({seen})"
            )
        else:
            return
        step.event("UnitFailed", f"{entry.name}: {entry.message}", "Warning")

    def _on_failure(self, step: _Pass, failed: list[str], version: str) -> float | None:
        message = f"{', '.join(failed)} failed the health gate for BMC firmware {version}"
        step.condition("Healthy", "False", "UnitFailed", message)
        if step.spec.rollback_on_failure:
            step.status.phase = "RollingBack"
            step.condition("Progressing", "False", "RollingBack", message)
            step.event("RollingBack", f"{message}; rolling back", "Warning")
            return 0.0
        step.status.phase = "Failed"
        step.condition("Progressing", "False", "Failed", f"{message} (no rollback)")
        step.event("Failed", f"{message}; stopped (no rollback)", "Warning")
        return None

    # -- rolling back -----------------------------------------------------------------------

    async def _roll_back(self, step: _Pass, release: Release) -> float | None:
        version = release.spec.version
        previous = step.status.previous
        if previous is not None:
            await step._ensure_channel(previous.package, previous.version)
        now = step.o._clock()
        for entry in step.status.units:
            if entry.phase in ("Failed", "Updating"):
                entry.phase, entry.started = "RollingBack", now
            if entry.phase != "RollingBack":
                continue
            view = await self._view(entry.name)
            if view is not None and view.committed and view.version != version:
                entry.phase, entry.message = "RolledBack", f"BMC back on {view.version}, committed"
                step.event("UnitRolledBack", f"{entry.name}: BMC runs {view.version} again")
            elif (
                entry.started is not None
                and now - entry.started > step.spec.health_deadline_seconds
            ):
                entry.message = "not back on a committed older firmware in time"
        waiting = [
            u for u in step.status.units if u.phase == "RollingBack" and "in time" not in u.message
        ]
        if waiting:
            return step.o._poll
        stuck = [u.name for u in step.status.units if u.phase == "RollingBack"]
        if stuck:
            step.status.phase = "Failed"
            message = f"{', '.join(stuck)} did not come back on their committed firmware"
            step.condition("Progressing", "False", "RollbackFailed", message)
            step.event("RollbackFailed", message, "Warning")
            return None
        step.status.phase = "RolledBack"
        kept = [u.name for u in step.status.units if u.phase == "Updated"]
        message = "failed BMCs run their committed firmware again"
        if previous is not None:
            message += f"; channel {step.status.channel} names {previous.version} again"
        if kept:
            message += (
                f"; {', '.join(kept)} keep {version} (a committed version is never downgraded)"
            )
        step.condition("Progressing", "False", "RolledBack", message)
        step.event("RolledBack", message, "Warning")
        return None


def _runs(view: BmcFirmwareView | None, version: str) -> bool:
    return view is not None and view.version == version and view.committed
