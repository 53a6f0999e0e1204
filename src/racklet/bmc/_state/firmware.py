"""The two seams of a firmware update: who decides an image is genuine, and where it goes.

``ImageVerifier`` belongs to the trust-chain work (TUF targets): it takes the stored upload
and returns what the image is, or raises :class:`~racklet.bmc.errors.ImageRejected`. The
BMC never installs an image no verifier vouched for; with no verifier configured it accepts
none at all.

``SlotProvider`` is the unit's A/B boot slots as the BMC knows them: which is active, what
each holds, and how a verified image is written to the inactive one.
:class:`racklet.bmc._state.unit_slots.UnitSlots` writes the unit's real slots (its storage,
where its bootstrap writes them) and arms the trial in the BMC's A/B record.
:class:`StagedSlots` is a BMC that cannot reach its unit's storage: it lists the slots
(slot A active, its payload version if known) and writes none (``Updateable`` false).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from racklet.bmc.errors import ImageRejected, SlotBusy
from racklet.boot import PayloadManifest


@dataclass(frozen=True)
class ImageUpload:
    """A pushed image as the BMC stored it (mode 0600), before anyone trusts it."""

    path: Path
    filename: str
    size: int
    parameters: Mapping[str, Any]
    """The ``UpdateParameters`` part, as sent."""
    oem: Mapping[str, Any] | None = None
    """The ``OemParameters`` part, if any (e.g. a detached signature)."""


@dataclass(frozen=True)
class VerifiedImage:
    """What a verifier vouches an image is."""

    name: str
    version: str
    os_payload: PayloadManifest | None = None
    """Set for a unit OS payload (signed for the unit's channel, as its bootstrap checks it);
    None for BMC firmware."""


ImageVerifier = Callable[[ImageUpload], VerifiedImage]
"""Decides whether an upload is a genuine image (blocking: it runs in a worker thread).

Raises ``ImageRejected`` (with a one-line reason) for anything it cannot vouch for."""


@dataclass(frozen=True)
class BootSlot:
    """One boot slot of the unit, as FirmwareInventory shows it."""

    name: str
    """``A`` or ``B``."""
    active: bool
    version: str | None = None
    """The payload version it holds, None if unknown or empty."""
    present: bool = True
    """False for an empty slot."""
    updateable: bool = False
    """True for the slot an update may write (the inactive one)."""


class SlotProvider(Protocol):
    """The unit's A/B boot slots.

    Must implement :meth:`slots` (cheap, no I/O: it runs on every GET) and :meth:`install`
    (called once per verified image, after verification, with the stored upload and the slot
    the push named; it returns the slot it wrote, which may be the other one when the named
    one is in use, and raises ``ImageRejected`` or ``SlotBusy`` having written nothing).
    """

    def slots(self) -> Sequence[BootSlot]: ...

    async def install(self, upload: ImageUpload, image: VerifiedImage, slot: str) -> str: ...


@dataclass
class StagedSlots:
    """Slot A active (``active_version`` if known), slot B the other; neither writable: this
    BMC cannot reach the unit's storage, so it says so (``Updateable`` false)."""

    active_version: str | None = None

    def slots(self) -> Sequence[BootSlot]:
        return (
            BootSlot("A", active=True, version=self.active_version),
            BootSlot("B", active=False, present=False),
        )

    async def install(self, upload: ImageUpload, image: VerifiedImage, slot: str) -> str:
        raise SlotBusy("this BMC cannot write its unit's OS slots")


def reject_all(upload: ImageUpload) -> VerifiedImage:
    """The verifier of a BMC without a trust chain: no image is genuine."""
    raise ImageRejected("this BMC has no image verifier configured; it accepts no image")
