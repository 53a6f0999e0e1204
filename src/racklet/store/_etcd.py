"""The etcd Store: the same objects and rules as SQLite, shared by several controllers.

Layout under a root prefix (default ``/racklet/``): ``objects/<Kind>/<name>`` holds the object
as JSON, ``events/<kind>/<name>/<digest of reason+message>`` one folded event. An object's
``resourceVersion`` is its key's ``mod_revision`` (not stored in the body), so a list's
revision is etcd's revision and a watch resumes from it exactly. Every write is one etcd
transaction that compares the key's ``mod_revision`` (optimistic concurrency without locks).

A *fenced* view (:meth:`EtcdStore.fenced`) adds one more compare to each write: the leader
key still has the revision this controller won it at. A controller that lost the lead (paused,
partitioned, its lease expired) therefore cannot record anything, and since reconcilers record
an action's intent before doing it, it cannot act either.
"""

from __future__ import annotations

import builtins
import hashlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from racklet.api import Event, Object
from racklet.store import _rules
from racklet.store._changes import Change, ChangeType
from racklet.store._etcd_gateway import (
    Compacted,
    EtcdGateway,
    KeyValue,
    b64,
    prefix_end,
    revision_of,
)
from racklet.store._protocol import LabelSelector
from racklet.store.errors import AlreadyExists, Conflict, Expired, Fenced, NotFound, StoreError

R = TypeVar("R", bound=Object)
_EVENT_ATTEMPTS = 5


@dataclass(frozen=True)
class Fence:
    """The leader key and the revision it was created at (the fencing token)."""

    key: bytes
    revision: int


Guard = Callable[[], Fence | None]


class EtcdStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "/racklet/",
        verify: ssl.SSLContext | bool = True,
        timeout: float = 5.0,
        _gateway: EtcdGateway | None = None,
        _guard: Guard | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix.encode()
        self.gateway = _gateway or EtcdGateway(url, verify=verify, timeout=timeout)
        self._owns_gateway = _gateway is None
        self._guard = _guard
        self._closed = False

    def fenced(self, guard: Guard) -> EtcdStore:
        """A view whose writes succeed only while ``guard()`` names the current leader key."""
        return EtcdStore(self.url, prefix=self.prefix.decode(), _gateway=self.gateway, _guard=guard)

    # -- keys -------------------------------------------------------------------------------

    def _kind_prefix(self, kind: str) -> bytes:
        return self.prefix + b"objects/" + kind.encode() + b"/"

    def _key(self, kind: str, name: str) -> bytes:
        return self._kind_prefix(kind) + name.encode()

    def _event_key(self, event: Event) -> bytes:
        kind, name, reason, message = _rules.event_key(event)
        digest = hashlib.sha256(f"{reason}\0{message}".encode()).hexdigest()[:24]
        return self.prefix + f"events/{kind}/{name}/{digest}".encode()

    def _fence(self) -> builtins.list[dict[str, Any]]:
        if self._guard is None:
            return []
        fence = self._guard()
        if fence is None:
            raise Fenced("this controller is not the leader: leader-only write refused")
        return [{"target": "MOD", "key": b64(fence.key), "mod_revision": str(fence.revision)}]

    async def check_fence(self) -> None:
        """Raise :class:`Fenced` unless this view's leader still holds the lead in etcd (called
        right before an actuation, as the last word on whether this controller may act)."""
        compare = self._fence()
        if compare:
            ok, _ = await self.gateway.txn(compare, [])
            if not ok:
                raise Fenced("this controller lost the lead: action refused")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    # -- reads ------------------------------------------------------------------------------

    async def get(self, kind: type[R], name: str) -> R:
        self._check_open()
        kind_name = _rules.kind_name(kind)
        kv, _ = await self.gateway.get(self._key(kind_name, name))
        if kv is None:
            raise NotFound(kind_name, name)
        return _decode(kind, kv)

    async def list(self, kind: type[R], label_selector: LabelSelector = None) -> builtins.list[R]:
        return (await self.list_with_revision(kind, label_selector))[0]

    async def list_with_revision(
        self, kind: type[R], label_selector: LabelSelector = None
    ) -> tuple[builtins.list[R], int]:
        self._check_open()
        kvs, revision = await self.gateway.range_prefix(self._kind_prefix(_rules.kind_name(kind)))
        objs = [_decode(kind, kv) for kv in kvs]
        return [o for o in objs if _rules.matches(o.metadata.labels, label_selector)], revision

    # -- writes -----------------------------------------------------------------------------

    async def _guarded_txn(
        self, key: bytes, compare: dict[str, Any], success: builtins.list[dict[str, Any]]
    ) -> tuple[bool, dict[str, Any], KeyValue | None]:
        """Run ``success`` if ``compare`` (and the fence) hold; on failure say why: raise
        :class:`Fenced`, or return the key's current value for the caller's own error."""
        fence = self._fence()
        failure: builtins.list[dict[str, Any]] = [{"request_range": {"key": b64(key)}}]
        if fence:
            failure.append({"request_range": {"key": fence[0]["key"]}})
        ok, answer = await self.gateway.txn([compare, *fence], success, failure)
        if ok:
            return True, answer, None
        responses = answer.get("responses", [])
        if fence:
            leader = _kvs(responses[1])
            if not leader or str(leader[0].mod_revision) != fence[0]["mod_revision"]:
                raise Fenced("this controller lost the lead: leader-only write refused")
        current = _kvs(responses[0])
        return False, answer, current[0] if current else None

    async def create(self, obj: R) -> R:
        self._check_open()
        kind_name = _rules.kind_name(type(obj))
        key = self._key(kind_name, obj.metadata.name)
        stored = _rules.for_create(obj, 0)
        put = {"request_put": {"key": b64(key), "value": b64(_encode(stored))}}
        compare = {"target": "CREATE", "key": b64(key), "create_revision": "0"}
        ok, answer, _ = await self._guarded_txn(key, compare, [put])
        if not ok:
            raise AlreadyExists(kind_name, obj.metadata.name)
        return _with_version(stored, revision_of(answer))

    async def _replace(self, obj: R, rule: Callable[[R, R, int], R]) -> R:
        self._check_open()
        kind = type(obj)
        key = self._key(obj.kind, obj.metadata.name)
        kv, _ = await self.gateway.get(key)
        if kv is None:
            raise NotFound(obj.kind, obj.metadata.name)
        current = _decode(kind, kv)
        stored = rule(current, obj, 0)  # raises Conflict on a stale resourceVersion
        put = {"request_put": {"key": b64(key), "value": b64(_encode(stored))}}
        compare = {"target": "MOD", "key": b64(key), "mod_revision": str(kv.mod_revision)}
        ok, answer, now = await self._guarded_txn(key, compare, [put])
        if not ok:
            if now is None:
                raise NotFound(obj.kind, obj.metadata.name)
            raise Conflict(
                obj.kind, obj.metadata.name, obj.metadata.resource_version, str(now.mod_revision)
            )
        return _with_version(stored, revision_of(answer))

    async def update(self, obj: R) -> R:
        return await self._replace(obj, _rules.for_update)

    async def update_status(self, obj: R) -> R:
        return await self._replace(obj, _rules.for_status)

    async def delete(self, kind: type[R], name: str, resource_version: str = "") -> R:
        self._check_open()
        kind_name = _rules.kind_name(kind)
        key = self._key(kind_name, name)
        kv, _ = await self.gateway.get(key)
        if kv is None:
            raise NotFound(kind_name, name)
        current = _decode(kind, kv)
        if resource_version and resource_version != current.metadata.resource_version:
            raise Conflict(kind_name, name, resource_version, current.metadata.resource_version)
        compare = {"target": "MOD", "key": b64(key), "mod_revision": str(kv.mod_revision)}
        ok, answer, now = await self._guarded_txn(
            key, compare, [{"request_delete_range": {"key": b64(key)}}]
        )
        if not ok:
            if now is None:
                raise NotFound(kind_name, name)
            raise Conflict(
                kind_name, name, current.metadata.resource_version, str(now.mod_revision)
            )
        return _rules.for_delete(current, revision_of(answer))

    # -- watch ------------------------------------------------------------------------------

    async def watch(self, kind: type[R], revision: int) -> AsyncIterator[Change]:
        self._check_open()
        kind_name = _rules.kind_name(kind)
        prefix = self._kind_prefix(kind_name)
        if revision > 0:
            await self._check_kept(prefix, revision)
        yield Change("BOOKMARK", kind_name, revision, None)
        try:
            async for result in self.gateway.watch(prefix, revision + 1):
                events = result.get("events", [])
                for raw in events:
                    change = _change(kind, kind_name, raw)
                    if change is not None:
                        yield change
                if not events and not result.get("created"):
                    yield Change("BOOKMARK", kind_name, revision_of(result), None)
        except Compacted as exc:
            raise Expired(revision, exc.compact_revision) from exc

    async def _check_kept(self, prefix: bytes, revision: int) -> None:
        """:class:`Expired` now (before any change is sent) if etcd compacted ``revision``."""
        body = {
            "key": b64(prefix),
            "range_end": b64(prefix_end(prefix)),
            "revision": str(revision),
            "limit": "1",
            "keys_only": True,
        }
        try:
            await self.gateway.call("/v3/kv/range", body)
        except Compacted as exc:
            raise Expired(revision, exc.compact_revision) from exc
        except StoreError as exc:
            if "future revision" not in str(exc):
                raise

    # -- events -----------------------------------------------------------------------------

    async def record_event(self, event: Event) -> Event:
        self._check_open()
        key = self._event_key(event)
        for _ in range(_EVENT_ATTEMPTS):
            kv, _ = await self.gateway.get(key)
            if kv is None:
                stored = _rules.new_event(event)
                compare = {"target": "CREATE", "key": b64(key), "create_revision": "0"}
            else:
                stored = _rules.repeated_event(Event.model_validate_json(kv.value), event)
                compare = {"target": "MOD", "key": b64(key), "mod_revision": str(kv.mod_revision)}
            value = b64(stored.model_dump_json(by_alias=True))
            ok, _ = await self.gateway.txn(
                [compare], [{"request_put": {"key": b64(key), "value": value}}]
            )
            if ok:
                if kv is None:
                    await self._trim_events()
                return stored
        raise StoreError(f"event {event.reason!r}: too many concurrent writers, not recorded")

    async def _trim_events(self) -> None:
        prefix = self.prefix + b"events/"
        span = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        counted = await self.gateway.call("/v3/kv/range", {**span, "count_only": True})
        extra = int(counted.get("count", 0)) - _rules.EVENT_LIMIT
        if extra <= 0:
            return
        oldest = await self.gateway.call(
            "/v3/kv/range",
            {**span, "keys_only": True, "sort_target": "MOD", "limit": str(extra)},
        )
        for kv in oldest.get("kvs", []):
            await self.gateway.call("/v3/kv/deleterange", {"key": kv["key"]})

    async def events(
        self, name: str | None = None, limit: int = 100, kind: str | None = None
    ) -> builtins.list[Event]:
        self._check_open()
        prefix = self.prefix + b"events/"
        if kind is not None:
            prefix += kind.encode() + b"/"
            if name is not None:
                prefix += name.encode() + b"/"
        kvs, _ = await self.gateway.range_prefix(prefix)
        kvs.sort(key=lambda kv: kv.mod_revision)
        chosen = [Event.model_validate_json(kv.value) for kv in kvs]
        chosen = [e for e in chosen if name is None or e.involved_object.name == name]
        return chosen[-limit:] if limit > 0 else []

    async def close(self) -> None:
        """Close the connection pool (if this view owns it); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_gateway:
            await self.gateway.aclose()


def _kvs(response: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue.parse(kv) for kv in response.get("response_range", {}).get("kvs", [])]


def _encode(obj: Object) -> str:
    return obj.model_dump_json(by_alias=True, exclude={"metadata": {"resource_version"}})


def _with_version(obj: R, revision: int) -> R:
    meta = obj.metadata.model_copy(update={"resource_version": str(revision)})
    return obj.model_copy(update={"metadata": meta})


def _decode(kind: type[R], kv: KeyValue) -> R:
    try:
        obj = kind.model_validate_json(kv.value)
    except ValidationError as exc:
        raise StoreError(f"a stored {_rules.kind_name(kind)} does not validate: {exc}") from exc
    return _with_version(obj, kv.mod_revision)


def _change(kind: type[R], kind_name: str, raw: dict[str, Any]) -> Change | None:
    kv = KeyValue.parse(raw["kv"])
    type_: ChangeType
    if raw.get("type") == "DELETE":
        if "prev_kv" not in raw:
            return None  # the last state was compacted away: nothing to show
        gone = _with_version(_decode(kind, KeyValue.parse(raw["prev_kv"])), kv.mod_revision)
        return Change("DELETED", kind_name, kv.mod_revision, gone)
    type_ = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
    return Change(type_, kind_name, kv.mod_revision, _decode(kind, kv))
