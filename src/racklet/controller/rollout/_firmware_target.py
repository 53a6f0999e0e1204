"""The BMC-firmware target: a unit is updated by pushing a ``bmc-firmware`` release to its BMC.

Per BMC:

1. **Push**: the release's signed image goes to the BMC's standby slot through Redfish
   ``UpdateService`` (multipart push, the image with the TUF metadata that vouches for it,
   which the BMC checks against its own TUF root). ``@Redfish.OperationApplyTime`` is
   ``Immediate``: the BMC restarts into the new slot on its own, so the controller needs no
   ``ConfigureManager`` privilege (its certificate login is an Operator).
2. **Judge**: ``Updated`` when the BMC answers running the release's version *committed*
   (its self-test passed). ``Failed`` when the push is refused, its task fails, or the BMC
   reports the image given up (it fell back by itself). A BMC is available when it answers,
   committed (one restarting or on trial counts against ``maxUnavailable``).
3. **Back**: nothing to push: a BMC whose new firmware failed is already on its committed
   slot. It is back when it runs a committed version other than the new one.

Exactly once: the engine records the batch before :meth:`BmcFirmwareTarget.start`. Asked
again (a later pass, or a controller that took over), the target pushes only if the BMC
answers and shows no trace of the version (neither running nor in its standby slot) and this
controller did not push it under the same request id; a BMC that does not answer is waited
for (the health deadline bounds it), and a BMC busy with an update is asked again later. The
BMC closes the last gap (a look just before the first push's task ends, a push just after):
it treats a push of the version it runs, or has armed for its next start, as done already.

Deliberately not here: ``SimpleUpdate`` (the BMC would fetch from a URL; a push needs no
route from the BMC to the boot server, and the BMC opens no connections on a client's word).
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from racklet.api import ChannelPointer, Release, UnitRollout
from racklet.boot import BootError, TufRepository
from racklet.controller.errors import TemporaryError
from racklet.controller.reconcilers._release import SignedFile
from racklet.controller.rollout._target import StepVerdict
from racklet.redfish import RedfishClientError, RedfishError, RedfishUnreachable
from racklet.redfish._client import BmcFirmwareView
from racklet.wire import firmware_oem_parameters

_REMEMBERED_PUSHES = 1024


class FirmwareBmc(Protocol):
    """The part of :class:`racklet.redfish.RedfishClient` a BMC firmware rollout uses."""

    async def bmc_firmware(self) -> BmcFirmwareView: ...

    async def push_bmc_firmware(
        self, image: bytes, oem_parameters: dict[str, Any], *, apply_time: str = "Immediate"
    ) -> str: ...

    async def task_outcome(self, monitor: str) -> str | None: ...


@dataclass(frozen=True)
class BmcSeen:
    """One look at a BMC: its firmware (None: no answer) and its push task's outcome."""

    view: BmcFirmwareView | None
    task_outcome: str | None = None
    """None while the task runs, is unknown or gone; ``OK`` or the error that ended it."""


class BmcFirmwareTarget:
    """Pushes ``bmc-firmware`` releases over the BMCs' Redfish clients (by unit name)."""

    noun = "BMC"

    def __init__(self, bmcs: Mapping[str, FirmwareBmc], boot_dir: Path) -> None:
        self._bmcs = bmcs
        self._boot_dir = boot_dir
        self._pushed: OrderedDict[tuple[str, str], str] = OrderedDict()
        """(unit, request) -> task monitor of the pushes this controller made."""

    def admit(
        self, release: Release, signed: Sequence[SignedFile], names: Sequence[str]
    ) -> tuple[str, str] | None:
        if len(signed) != 1:
            version = release.spec.version
            return "NotFirmware", (
                f"a BMC firmware release has exactly one image; {version} has {len(signed)}"
            )
        missing = [n for n in names if n not in self._bmcs]
        if missing:
            return "NoBmcClient", f"no Redfish client for {', '.join(missing)}"
        return None

    async def observe(self, entries: Sequence[UnitRollout]) -> Mapping[str, BmcSeen]:
        looks = await asyncio.gather(*(self._look(e) for e in entries))
        return {e.name: look for e, look in zip(entries, looks, strict=True)}

    async def _look(self, entry: UnitRollout) -> BmcSeen:
        bmc = self._bmcs.get(entry.name)
        if bmc is None:
            return BmcSeen(None)
        outcome = None
        monitor = self._pushed.get((entry.name, entry.request))
        if monitor is not None:
            try:
                outcome = await bmc.task_outcome(monitor)
            except RedfishClientError:
                outcome = None  # the BMC is restarting
        try:
            view: BmcFirmwareView | None = await bmc.bmc_firmware()
        except RedfishClientError:
            view = None  # restarting, or unreachable: judged by the deadline
        return BmcSeen(view, outcome)

    def runs(self, seen: BmcSeen | None, version: str) -> bool:
        return seen is not None and _runs(seen.view, version)

    def available(self, seen: BmcSeen | None) -> bool:
        return seen is not None and seen.view is not None and seen.view.committed

    async def start(
        self, entry: UnitRollout, release: Release, seen: BmcSeen | None, *, again: bool
    ) -> str | None:
        version = release.spec.version
        if again:
            if (entry.name, entry.request) in self._pushed:
                return None  # pushed by this controller: judged from here on
            view = seen.view if seen is not None else None
            if view is None or version in (view.version, view.standby_version):
                return None  # no answer (wait), or the push reached it before a takeover
        image, oem = await self._image(release)
        try:
            monitor = await self._bmcs[entry.name].push_bmc_firmware(image, oem)
        except (RedfishUnreachable, RedfishError) as exc:
            if isinstance(exc, RedfishError) and exc.status != 503:
                return f"push refused: {exc}"
            entry.message = f"push not taken yet ({exc}); asking again"  # down or busy
            return None
        self._pushed[(entry.name, entry.request)] = monitor
        while len(self._pushed) > _REMEMBERED_PUSHES:
            self._pushed.popitem(last=False)
        entry.message = "pushed; the BMC try-boots it"
        return None

    def judge(self, entry: UnitRollout, seen: BmcSeen | None, version: str) -> StepVerdict:
        view = seen.view if seen is not None else None
        outcome = seen.task_outcome if seen is not None else None
        if _runs(view, version):
            return StepVerdict("Done", f"BMC runs {version}, committed")
        if outcome not in (None, "OK"):
            return StepVerdict("Failed", f"update task failed: {outcome}")
        if view is not None and view.standby_version == version and view.standby_failure:
            return StepVerdict("Failed", f"fell back to {view.version}: {view.standby_failure}")
        answer = view.version if view is not None else "no answer"
        return StepVerdict("Waiting", f"BMC not on {version} committed", answer)

    async def roll_back(
        self, entry: UnitRollout, previous: ChannelPointer, seen: BmcSeen | None, *, again: bool
    ) -> None:
        """Nothing to do: a BMC whose trial failed went back to its committed slot itself."""

    def judge_back(
        self, entry: UnitRollout, seen: BmcSeen | None, previous: ChannelPointer, version: str
    ) -> StepVerdict:
        view = seen.view if seen is not None else None
        if view is not None and view.committed and view.version != version:
            return StepVerdict("Done", f"BMC back on {view.version}, committed")
        return StepVerdict("Waiting", "BMC not back on a committed older firmware")

    def batch_message(self, names: str, version: str) -> str:
        return f"pushing BMC firmware {version} to {names}"

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


def _runs(view: BmcFirmwareView | None, version: str) -> bool:
    return view is not None and view.version == version and view.committed
