"""Release channels over the rack's TUF repository, and the Release reconciler.

:class:`Channels` is the one seam the rollout needs: which release a channel's signed
``current.json`` names, whether a release is published, and moving the pointer.
:class:`TufChannels` is the real one, over :class:`racklet.boot.TufRepository` (blocking file
I/O and signing, so it runs in a worker thread; the repository's own lock makes each move
atomic). The Release reconciler only observes: it reports whether a ``Release`` resource
matches what the repository actually signed (``Published``), never publishes anything.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from racklet.api import ChannelPointer, Event, Release, ReleaseTarget, set_condition
from racklet.boot import BootError, TufRepository
from racklet.controller.errors import TemporaryError
from racklet.store import NotFound, Store

RECHECK_SECONDS = 30.0
BMC_FIRMWARE_CHANNEL = "bmc-firmware"
"""The channel of BMC firmware releases (what a BMC's TUF image verifier accepts)."""
_T = TypeVar("_T")


@dataclass(frozen=True)
class SignedFile:
    """One target as the repository signed it."""

    name: str
    path: str
    length: int
    sha256: str


class Channels(Protocol):
    """Release channels as units see them (a TUF repository, or a fake in tests)."""

    async def current(self, channel: str) -> ChannelPointer | None: ...

    async def published(
        self, channel: str, package: str, version: str
    ) -> list[SignedFile] | None: ...

    async def point(self, channel: str, package: str, version: str) -> None:
        """Make ``channel``'s ``current.json`` name this (already published) release."""
        ...


class TufChannels:
    """:class:`Channels` over the rack's TUF repository in ``base`` (``<stateDir>/boot``)."""

    def __init__(self, base: Path, *, required: tuple[str, ...] = (BMC_FIRMWARE_CHANNEL,)) -> None:
        """``required`` channels are added to the repository at first use if it lacks them
        (racks created before the ``bmc-firmware`` channel existed)."""
        self._base = base
        self._required = required
        self._migrated = False

    def _repo(self) -> TufRepository:
        repo = TufRepository.open(self._base)
        if not self._migrated:
            for channel in self._required:
                repo.ensure_channel(channel)
            self._migrated = True
        return repo

    async def current(self, channel: str) -> ChannelPointer | None:
        def read() -> ChannelPointer | None:
            for release in self._repo().list():
                if release.channel == channel and release.current:
                    return ChannelPointer(package=release.name, version=release.version)
            return None

        return await self._run(read)

    async def published(self, channel: str, package: str, version: str) -> list[SignedFile] | None:
        def read() -> list[SignedFile] | None:
            for r in self._repo().list():
                if (r.channel, r.name, r.version) == (channel, package, version):
                    return [SignedFile(f.name, f.target_path, f.length, f.sha256) for f in r.files]
            return None

        return await self._run(read)

    async def point(self, channel: str, package: str, version: str) -> None:
        def move() -> None:
            repo = self._repo()
            release = next(
                (
                    r
                    for r in repo.list()
                    if (r.channel, r.name, r.version) == (channel, package, version)
                ),
                None,
            )
            if release is None:
                raise BootError(f"{package} {version} is not published in channel {channel}")
            # Re-publishing the signed files (hash-named, so byte-identical) with current=True
            # is the repository's one atomic way to move the pointer.
            files = {
                f.name: repo.targets_dir / os.path.dirname(f.target_path) / f"{f.sha256}.{f.name}"
                for f in release.files
            }
            repo.publish(channel, package, version, files, current=True)

        await self._run(move)

    @staticmethod
    async def _run(work: Callable[[], _T]) -> _T:
        try:
            return await asyncio.to_thread(work)
        except (BootError, OSError) as exc:
            raise TemporaryError(f"TUF repository: {exc}", delay=5.0) from exc


class ReleaseReconciler:
    """Observe whether each Release is signed in its channel exactly as its spec says."""

    def __init__(self, store: Store, channels: Channels) -> None:
        self._store = store
        self._channels = channels

    async def reconcile(self, name: str) -> float | None:
        try:
            release = await self._store.get(Release, name)
        except NotFound:
            return None
        spec = release.spec
        signed = await self._channels.published(spec.channel, spec.package, spec.version)
        status = release.status.model_copy(deep=True)
        generation = release.metadata.generation
        phase: Literal["Published", "Failed"]
        state: Literal["True", "False"]
        if signed is None:
            phase, state, reason = "Failed", "False", "NotInRepository"
            message = f"{spec.package} {spec.version} is not signed in channel {spec.channel}"
        elif spec.targets and _mismatch(spec.targets, signed):
            phase, state, reason = "Failed", "False", "TargetsMismatch"
            message = _mismatch(spec.targets, signed)
        else:
            phase, state, reason = "Published", "True", "Signed"
            message = f"{len(signed)} target(s) signed in channel {spec.channel}"
        status.phase = phase
        changed = set_condition(
            status.conditions, "Published", state, reason, message, observed_generation=generation
        )
        status.observed_generation = generation
        if status != release.status:
            release.status = status
            await self._store.update_status(release)
        if changed and state == "False":
            await self._store.record_event(
                Event.about("Release", name, reason, message, type="Warning")
            )
        return RECHECK_SECONDS if state == "False" else None


def _mismatch(targets: list[ReleaseTarget], signed: list[SignedFile]) -> str:
    have = {f.name: (f.length, f.sha256) for f in signed}
    for t in targets:
        if have.get(t.name) != (t.length, t.sha256):
            return f"target {t.name} is not signed with length {t.length}, SHA-256 {t.sha256[:12]}"
    return ""
