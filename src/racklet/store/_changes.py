"""An in-process change log: what a watch on the SQLite and in-memory stores reads.

Each write appends one :class:`Change` (its revision is the store's resourceVersion after the
write). The log keeps the newest ``limit`` changes; a watch from an older revision gets
:class:`Expired` and must list again. The log starts empty at the revision the store had when
opened, so after a restart a client resumes with a fresh list — as with a compacted etcd.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from racklet.api import Object
from racklet.store.errors import Expired

ChangeType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True)
class Change:
    """One write; a ``BOOKMARK`` (no object) only says "everything up to here was sent"."""

    type: ChangeType
    kind: str
    revision: int
    object: Object | None


class ChangeLog:
    def __init__(self, floor: int = 0, limit: int = 10_000) -> None:
        self._changes: list[Change] = []
        self._revisions: list[int] = []
        self.floor = floor  # every change after this revision is still held
        self._limit = limit
        self._signal = asyncio.Event()
        self._closed = False

    def publish(self, change: Change) -> None:
        """Record one change (called on the event loop, in revision order)."""
        index = bisect.bisect(self._revisions, change.revision)
        self._changes.insert(index, change)
        self._revisions.insert(index, change.revision)
        if len(self._changes) > self._limit:
            drop = len(self._changes) - self._limit // 2
            self.floor = self._revisions[drop - 1]
            del self._changes[:drop], self._revisions[:drop]
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        self._signal.set()
        self._signal = asyncio.Event()

    def after(self, kind: str, revision: int) -> list[Change]:
        if revision < self.floor:
            raise Expired(revision, self.floor)
        start = bisect.bisect(self._revisions, revision)
        return [c for c in self._changes[start:] if c.kind == kind]

    async def follow(self, kind: str, revision: int) -> AsyncIterator[Change]:
        """A ``BOOKMARK`` at ``revision`` (or :class:`Expired`) at once, then every change of
        ``kind`` after ``revision`` as it happens; ends when the log is closed."""
        self.after(kind, revision)
        yield Change("BOOKMARK", kind, revision, None)
        while not self._closed:
            signal = self._signal
            position = self._revisions[-1] if self._revisions else revision
            for change in self.after(kind, revision):
                yield change
                revision = change.revision
            revision = max(revision, position)
            await signal.wait()
