"""The Store protocol every backend implements (SQLite by default, etcd for HA)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from typing import Protocol, TypeVar

from racklet.api import Event, Object, Selector
from racklet.store._changes import Change

R = TypeVar("R", bound=Object)
LabelSelector = Mapping[str, str] | Selector | None


class Store(Protocol):
    """Objects by kind and name, with optimistic concurrency, a watch, and an event log.

    ``kind`` is the resource class (``Rack``, ``ComputeUnit``, ...), so results are typed.
    ``update`` writes spec and metadata (labels, annotations) and bumps ``generation`` when
    the spec changed; ``update_status`` writes only the status. Both raise ``Conflict``
    when the object's ``resourceVersion`` is stale, ``NotFound`` when it is gone. Every
    write gives the object a new, larger ``resourceVersion``; ``watch`` replays changes
    after a revision (``Expired`` when that revision is older than the kept history).
    """

    async def get(self, kind: type[R], name: str) -> R: ...

    async def list(
        self, kind: type[R], label_selector: LabelSelector = None
    ) -> builtins.list[R]: ...

    async def list_with_revision(
        self, kind: type[R], label_selector: LabelSelector = None
    ) -> tuple[builtins.list[R], int]:
        """The objects and the store revision they were read at (a watch starts there)."""
        ...

    async def create(self, obj: R) -> R: ...

    async def update(self, obj: R) -> R: ...

    async def update_status(self, obj: R) -> R: ...

    async def delete(self, kind: type[R], name: str, resource_version: str = "") -> R:
        """Delete; return the last state, carrying the deletion's resourceVersion."""
        ...

    def watch(self, kind: type[R], revision: int) -> AsyncIterator[Change]:
        """Changes of ``kind`` after ``revision``, as they happen, until the store closes."""
        ...

    async def record_event(self, event: Event) -> Event: ...

    async def events(
        self, name: str | None = None, limit: int = 100, kind: str | None = None
    ) -> builtins.list[Event]:
        """The newest ``limit`` events (about object ``kind``/``name``, if given), oldest first."""
        ...

    async def close(self) -> None: ...
