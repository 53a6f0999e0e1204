"""The unit's real OS slots, written by the Update Service as the unit's bootstrap writes them.

A verified unit OS payload (:attr:`~racklet.bmc.VerifiedImage.os_payload`) goes into the
slot that is not committed, in the unit's own storage (``<storage>/slots/A|B``: in the twin
``<state-dir>/units/<unit>/``; on hardware the unit's boot medium as the BMC reaches it),
with the bootstrap's install (:func:`racklet.boot.install_held_payload`), and is then armed
as the trial in the BMC's A/B record (``ab.json``, through the backplane link's own
``tryboot``, so the same rules and lock apply). The unit's next boot tries it through the
bootstrap's try-boot (a try-boot comes before anything its channel names), its OS agent
commits it after the health check, or the boot after falls back to the committed slot.

The committed slot is never written: a push naming it writes the other one (as a push
naming the running BMC firmware writes the standby slot). Refused, with nothing written:
a version below the rollback floor (``ImageRejected``), and while the unit has no committed
slot yet or runs a trial that is not committed (``SlotBusy``): the slot on trial is the
one a write would replace under the running OS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from racklet.bmc._state.ab import AbRecord
from racklet.bmc._state.firmware import BootSlot, ImageUpload, VerifiedImage
from racklet.bmc.errors import ImageRejected, SlotBusy
from racklet.boot import BootError, BootLimits, install_held_payload
from racklet.versions import below_floor


@dataclass
class UnitSlots:
    """A :class:`~racklet.bmc.SlotProvider` over the unit's storage and the BMC's A/B record."""

    storage: Path
    """The unit's storage, where its bootstrap keeps ``slots/A`` and ``slots/B``."""
    record: Callable[[], Awaitable[AbRecord]]
    """The A/B record as it is now (the link service's, under its lock)."""
    arm: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    """Arms a trial, as the link's ``tryboot`` operation (same checks, same lock)."""
    limits: BootLimits = field(default_factory=BootLimits)
    """The bootstrap's limits: the trial gets its health deadline."""

    def slots(self) -> Sequence[BootSlot]:
        # Both are Updateable: a push writes the one not committed, whichever is named (the
        # committed one is WriteProtected, from the A/B record, in the inventory). What each
        # holds is the A/B record's to say: a slot it names no version for is empty to the BMC.
        return (
            BootSlot("A", active=True, present=False, updateable=True),
            BootSlot("B", active=False, present=False, updateable=True),
        )

    async def inactive(self) -> str:
        """The slot a push writes now; ``SlotBusy`` if none may be written."""
        record = await self.record()
        if record.committed is None:
            raise SlotBusy(
                "the unit has not committed a first release yet; its bootstrap installs that"
            )
        trial = record.trying
        if trial is not None and not record.tryboot:
            raise SlotBusy(
                f"slot {trial.slot} ({trial.version}) is on trial and running; "
                "wait for its commit or its fall-back"
            )
        return "B" if record.committed.slot == "A" else "A"

    async def install(self, upload: ImageUpload, image: VerifiedImage, slot: str) -> str:
        manifest = image.os_payload
        if manifest is None:
            raise ImageRejected(f"{image.name} {image.version} is not a unit OS payload")
        target = await self.inactive()
        floor = (await self.record()).rollback_version
        if below_floor(manifest.version, floor):
            raise ImageRejected(
                f"rollback protection: {manifest.name} {manifest.version} is below the "
                f"committed version {floor}"
            )
        try:
            await asyncio.to_thread(
                install_held_payload, self.storage, target, upload.path, manifest
            )
        except BootError as exc:
            raise ImageRejected(" ".join(str(exc).split())) from exc
        await self.arm(
            {
                "slot": target,
                "version": manifest.version,
                "sha256": manifest.payload_sha256,
                "deadlineSeconds": self.limits.health_deadline_seconds,
            }
        )
        return target
