"""An in-memory Store: the fake for tests, with exactly the rules of the real one."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Mapping
from typing import Any, TypeVar

from racklet.api import ComputeUnit, Event, Rack
from racklet.store import _rules
from racklet.store.errors import AlreadyExists, NotFound, StoreError

R = TypeVar("R", Rack, ComputeUnit)


class MemoryStore:
    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], Any] = {}
        self._events: list[Event] = []
        self._version = 0
        self._lock = asyncio.Lock()
        self._closed = False

    def _next_version(self) -> int:
        if self._closed:
            raise StoreError("the store is closed")
        self._version += 1
        return self._version

    def _current(self, kind: str, name: str) -> Any:
        try:
            return self._objects[(kind, name)]
        except KeyError:
            raise NotFound(kind, name) from None

    async def get(self, kind: type[R], name: str) -> R:
        obj: R = self._current(_kind(kind), name)
        return obj.model_copy(deep=True)

    async def list(
        self, kind: type[R], label_selector: Mapping[str, str] | None = None
    ) -> builtins.list[R]:
        name = _kind(kind)
        found: list[R] = [
            obj.model_copy(deep=True)
            for (k, _), obj in sorted(self._objects.items())
            if k == name and _rules.matches(obj.metadata.labels, label_selector)
        ]
        return found

    async def create(self, obj: R) -> R:
        async with self._lock:
            key = (obj.kind, obj.metadata.name)
            if key in self._objects:
                raise AlreadyExists(*key)
            stored = _rules.for_create(obj, self._next_version())
            self._objects[key] = stored
            return stored.model_copy(deep=True)

    async def update(self, obj: R) -> R:
        async with self._lock:
            current = self._current(obj.kind, obj.metadata.name)
            _rules.check_version(current, obj)
            stored: R = _rules.for_update(current, obj, self._next_version())
            self._objects[(obj.kind, obj.metadata.name)] = stored
            return stored.model_copy(deep=True)

    async def update_status(self, obj: R) -> R:
        async with self._lock:
            current = self._current(obj.kind, obj.metadata.name)
            _rules.check_version(current, obj)
            stored: R = _rules.for_status(current, obj, self._next_version())
            self._objects[(obj.kind, obj.metadata.name)] = stored
            return stored.model_copy(deep=True)

    async def delete(self, kind: type[R], name: str) -> None:
        async with self._lock:
            self._current(_kind(kind), name)
            del self._objects[(_kind(kind), name)]

    async def record_event(self, event: Event) -> Event:
        async with self._lock:
            key = _rules.event_key(event)
            for index, existing in enumerate(self._events):
                if _rules.event_key(existing) == key:
                    folded = _rules.repeated_event(existing, event)
                    del self._events[index]
                    self._events.append(folded)
                    return folded.model_copy(deep=True)
            fresh = _rules.new_event(event)
            self._events.append(fresh)
            del self._events[: -_rules.EVENT_LIMIT]
            return fresh.model_copy(deep=True)

    async def events(self, name: str | None = None, limit: int = 100) -> builtins.list[Event]:
        chosen = [e for e in self._events if name is None or e.involved_object.name == name]
        return [e.model_copy(deep=True) for e in chosen[-limit:]] if limit > 0 else []

    async def close(self) -> None:
        self._closed = True


def _kind(kind: type[Any]) -> str:
    return str(kind.model_fields["kind"].default)
