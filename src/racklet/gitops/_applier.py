"""The applier: the five verbs GitOps needs, on resource dicts, and one over a Racklet Store.

The reconciler talks only to :class:`Applier`, so the same code runs inside the controller
(over its store), in tests (over :class:`racklet.store.MemoryStore`) or, later, against the
HTTP API. Objects are wire-form dicts (camelCase), the same shape as manifests.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from racklet.api import KINDS, Event, InvalidObject, Object, to_dict, validate
from racklet.gitops.errors import ApplyConflict, ApplyError
from racklet.store import AlreadyExists, Conflict, NotFound, Store, StoreError

EventType = Literal["Normal", "Warning"]


class Applier(Protocol):
    """What the GitSource reconciler may do to the rack's objects.

    ``update`` and ``update_status`` carry ``metadata.resourceVersion`` and raise
    :class:`ApplyConflict` when it is stale; other refusals raise :class:`ApplyError`.
    """

    async def get(self, kind: str, name: str) -> dict[str, Any] | None: ...

    async def list(
        self, kind: str, labels: Mapping[str, str] | None = None
    ) -> builtins.list[dict[str, Any]]: ...

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, kind: str, name: str) -> None: ...

    async def record_event(
        self, kind: str, name: str, reason: str, message: str, type: EventType = "Normal"
    ) -> None: ...


def _model(kind: str) -> type[Object]:
    model = KINDS.get(kind)
    if model is None:
        raise ApplyError(f"kind {kind!r} is not stored by this controller")
    return model


class StoreApplier:
    """:class:`Applier` over a :class:`racklet.store.Store`, translating its errors."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _parse(self, obj: dict[str, Any]) -> Object:
        try:
            return validate(_model(str(obj.get("kind"))), obj)
        except InvalidObject as exc:
            raise ApplyError(f"{obj.get('kind')}/{_name(obj)}: {exc}") from exc

    async def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return to_dict(await self._store.get(_model(kind), name))
        except NotFound:
            return None
        except StoreError as exc:
            raise ApplyError(str(exc)) from exc

    async def list(
        self, kind: str, labels: Mapping[str, str] | None = None
    ) -> builtins.list[dict[str, Any]]:
        try:
            return [to_dict(o) for o in await self._store.list(_model(kind), labels)]
        except StoreError as exc:
            raise ApplyError(str(exc)) from exc

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        try:
            return to_dict(await self._store.create(self._parse(obj)))
        except AlreadyExists as exc:
            raise ApplyConflict(str(exc)) from exc
        except StoreError as exc:
            raise ApplyError(str(exc)) from exc

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._write(obj, status=False)

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._write(obj, status=True)

    async def _write(self, obj: dict[str, Any], *, status: bool) -> dict[str, Any]:
        model = self._parse(obj)
        try:
            if status:
                return to_dict(await self._store.update_status(model))
            return to_dict(await self._store.update(model))
        except (Conflict, NotFound) as exc:
            raise ApplyConflict(str(exc)) from exc
        except StoreError as exc:
            raise ApplyError(str(exc)) from exc

    async def delete(self, kind: str, name: str) -> None:
        try:
            await self._store.delete(_model(kind), name)
        except NotFound:
            return
        except StoreError as exc:
            raise ApplyError(str(exc)) from exc

    async def record_event(
        self, kind: str, name: str, reason: str, message: str, type: EventType = "Normal"
    ) -> None:
        try:
            await self._store.record_event(Event.about(kind, name, reason, message, type))
        except StoreError as exc:
            raise ApplyError(str(exc)) from exc


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))
