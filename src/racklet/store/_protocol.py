"""The Store protocol every backend implements (SQLite by default, etcd later)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Protocol, TypeVar

from racklet.api import ComputeUnit, Event, Rack

R = TypeVar("R", Rack, ComputeUnit)


class Store(Protocol):
    """Objects by kind and name, with optimistic concurrency, plus an event log.

    ``kind`` is the resource class (``Rack`` or ``ComputeUnit``), so results are typed.
    ``update`` writes spec and metadata (labels, annotations) and bumps ``generation`` when
    the spec changed; ``update_status`` writes only the status. Both raise ``Conflict``
    when the object's ``resourceVersion`` is stale, ``NotFound`` when it is gone.
    """

    async def get(self, kind: type[R], name: str) -> R: ...

    async def list(
        self, kind: type[R], label_selector: Mapping[str, str] | None = None
    ) -> builtins.list[R]: ...

    async def create(self, obj: R) -> R: ...

    async def update(self, obj: R) -> R: ...

    async def update_status(self, obj: R) -> R: ...

    async def delete(self, kind: type[R], name: str) -> None: ...

    async def record_event(self, event: Event) -> Event: ...

    async def events(self, name: str | None = None, limit: int = 100) -> builtins.list[Event]:
        """The newest ``limit`` events (about object ``name``, if given), oldest first."""
        ...

    async def close(self) -> None: ...
