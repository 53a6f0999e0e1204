"""An in-memory Store: the fake for tests, with exactly the rules of the real one."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from racklet.api import Event, Object, copy_model
from racklet.store import _rules
from racklet.store._changes import Change, ChangeLog, ChangeType
from racklet.store._protocol import LabelSelector
from racklet.store.errors import AlreadyExists, NotFound, StoreError

R = TypeVar("R", bound=Object)


class MemoryStore:
    def __init__(self, *, history: int = 10_000) -> None:
        self._objects: dict[tuple[str, str], Any] = {}
        self._events: list[Event] = []
        self._version = 0
        self._lock = asyncio.Lock()
        self._closed = False
        self._log = ChangeLog(limit=history)

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

    def _publish(self, type_: ChangeType, obj: Object) -> None:
        self._log.publish(
            Change(type_, obj.kind, int(obj.metadata.resource_version), copy_model(obj))
        )

    async def get(self, kind: type[R], name: str) -> R:
        obj: R = self._current(_rules.kind_name(kind), name)
        return copy_model(obj)

    async def list(self, kind: type[R], label_selector: LabelSelector = None) -> builtins.list[R]:
        return (await self.list_with_revision(kind, label_selector))[0]

    async def list_with_revision(
        self, kind: type[R], label_selector: LabelSelector = None
    ) -> tuple[builtins.list[R], int]:
        name = _rules.kind_name(kind)
        found: list[R] = [
            copy_model(obj)
            for (k, _), obj in sorted(self._objects.items())
            if k == name and _rules.matches(obj.metadata.labels, label_selector)
        ]
        return found, self._version

    async def create(self, obj: R) -> R:
        async with self._lock:
            key = (_rules.kind_name(type(obj)), obj.metadata.name)
            if key in self._objects:
                raise AlreadyExists(*key)
            stored = _rules.for_create(obj, self._next_version())
            self._objects[key] = stored
            self._publish("ADDED", stored)
            return copy_model(stored)

    async def update(self, obj: R) -> R:
        async with self._lock:
            current = self._current(obj.kind, obj.metadata.name)
            _rules.check_version(current, obj)
            stored: R = _rules.for_update(current, obj, self._next_version())
            self._objects[(obj.kind, obj.metadata.name)] = stored
            self._publish("MODIFIED", stored)
            return copy_model(stored)

    async def update_status(self, obj: R) -> R:
        async with self._lock:
            current = self._current(obj.kind, obj.metadata.name)
            _rules.check_version(current, obj)
            stored: R = _rules.for_status(current, obj, self._next_version())
            self._objects[(obj.kind, obj.metadata.name)] = stored
            self._publish("MODIFIED", stored)
            return copy_model(stored)

    async def delete(self, kind: type[R], name: str, resource_version: str = "") -> R:
        async with self._lock:
            kind_name = _rules.kind_name(kind)
            current = self._current(kind_name, name)
            if resource_version:
                _rules.check_version(
                    current, current.model_copy(update={"metadata": _rv(current, resource_version)})
                )
            del self._objects[(kind_name, name)]
            gone: R = _rules.for_delete(current, self._next_version())
            self._publish("DELETED", gone)
            return copy_model(gone)

    async def watch(self, kind: type[R], revision: int) -> AsyncIterator[Change]:
        async for change in self._log.follow(_rules.kind_name(kind), revision):
            yield change

    async def record_event(self, event: Event) -> Event:
        async with self._lock:
            key = _rules.event_key(event)
            for index, existing in enumerate(self._events):
                if _rules.event_key(existing) == key:
                    folded = _rules.repeated_event(existing, event)
                    del self._events[index]
                    self._events.append(folded)
                    return copy_model(folded)
            fresh = _rules.new_event(event)
            self._events.append(fresh)
            del self._events[: -_rules.EVENT_LIMIT]
            return copy_model(fresh)

    async def events(
        self, name: str | None = None, limit: int = 100, kind: str | None = None
    ) -> builtins.list[Event]:
        chosen = [
            e
            for e in self._events
            if (name is None or e.involved_object.name == name)
            and (kind is None or e.involved_object.kind == kind)
        ]
        return [copy_model(e) for e in chosen[-limit:]] if limit > 0 else []

    async def close(self) -> None:
        self._closed = True
        self._log.close()


def _rv(obj: Object, resource_version: str) -> Any:
    return obj.metadata.model_copy(update={"resource_version": resource_version})
