"""The two seams of a firmware update: who decides an image is genuine, and where it goes.

``ImageVerifier`` belongs to the trust-chain work (TUF targets): it takes the stored upload
and returns what the image is, or raises :class:`~racklet.bmc.errors.ImageRejected`. The
BMC never installs an image no verifier vouched for; with no verifier configured it accepts
none at all.

``SlotProvider`` is the unit's A/B boot slots as the BMC knows them: which is active, what
each holds, and how a verified image is written to the inactive one. :class:`StagedSlots`
is the stand-in until the A/B work lands: slot A is the active one (its payload version if
known), and a verified image is kept in the BMC's storage as slot B's content.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from racklet.bmc.errors import ImageRejected
from racklet.config import atomic_file


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
    (called once per verified image, after verification, with the stored upload).
    """

    def slots(self) -> Sequence[BootSlot]: ...

    async def install(self, upload: ImageUpload, image: VerifiedImage, slot: str) -> None: ...


@dataclass
class StagedSlots:
    """Slot A active (``active_version`` if known); a verified image is staged as slot B."""

    directory: Path
    active_version: str | None = None
    _staged: str | None = field(default=None, init=False)

    def slots(self) -> Sequence[BootSlot]:
        return (
            BootSlot("A", active=True, version=self.active_version),
            BootSlot(
                "B",
                active=False,
                version=self._staged,
                present=self._staged is not None,
                updateable=True,
            ),
        )

    async def install(self, upload: ImageUpload, image: VerifiedImage, slot: str) -> None:
        await asyncio.to_thread(_stage, upload.path, self.directory / f"slot-{slot}.img")
        self._staged = image.version


def _stage(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically and durably, private to the BMC."""
    with source.open("rb") as src, atomic_file(target, mode=0o600) as dst:
        shutil.copyfileobj(src, dst.file, 1024 * 1024)


def reject_all(upload: ImageUpload) -> VerifiedImage:
    """The verifier of a BMC without a trust chain: no image is genuine."""
    raise ImageRejected("this BMC has no image verifier configured; it accepts no image")
