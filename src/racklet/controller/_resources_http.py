"""The generic resource API: list/watch/get/create/update/patch/delete and ``/status``.

One set of handlers serves every kind in :data:`racklet.api.KIND_INFO`; the contract is in
``docs/control-plane.md``. Handlers only read and write the store and then queue the object
for its reconciler; they never act on hardware.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from racklet.api import (
    API_VERSION,
    BY_PLURAL,
    KIND_INFO,
    InvalidObject,
    KindInfo,
    Object,
    Selector,
    parse,
    parse_selector,
    to_dict,
    validate,
)
from racklet.controller._status import invalid, status_response
from racklet.limits import LIMITS, InputRejected, parse_json, parse_yaml
from racklet.store import Change, Conflict, Expired, Store

Enqueue = Callable[[str, str], None]
WRITE_ATTEMPTS = 8
BOOKMARK_SECONDS = 5.0
_FROZEN_META = {("metadata", "name"), ("metadata", "uid"), ("metadata", "creationTimestamp")}
_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _changed_paths(before: Any, after: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(before, dict) and isinstance(after, dict):
        paths: set[tuple[str, ...]] = set()
        for key in before.keys() | after.keys():
            paths |= _changed_paths(before.get(key), after.get(key), (*prefix, key))
        return paths
    return set() if before == after else {prefix}


def _touches(paths: set[tuple[str, ...]], fixed: tuple[str, ...]) -> bool:
    return any(p[: len(fixed)] == fixed or fixed[: len(p)] == p for p in paths)


def check_immutable(info: KindInfo, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Refuse a write that changes identity or a field the kind fixes at creation."""
    changed = _changed_paths(before, after)
    for fixed in sorted(_FROZEN_META | set(info.immutable)):
        if _touches(changed, fixed):
            raise InvalidObject([f"{'.'.join(fixed)}: field is immutable"])


async def read_capped(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) once it grows past ``limit`` bytes (never buffered whole)."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise InputRejected(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputRejected(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, *, max_bytes: int = LIMITS.max_body_bytes) -> Any:
    """The body as data: JSON, or YAML when the content type says so (``racklet.limits``).

    YAML is loaded in a thread: it is slow enough per byte to stall the event loop.
    """
    raw = await read_capped(request, max_bytes)
    if "yaml" in request.headers.get("content-type", ""):
        return await asyncio.to_thread(parse_yaml, raw)
    return parse_json(raw, max_bytes=max_bytes)


def _info(plural: str) -> KindInfo:
    info = BY_PLURAL.get(plural)
    if info is None:
        known = ", ".join(i.plural for i in KIND_INFO)
        raise HTTPException(404, f"no resource type {plural!r} (known: {known})")
    return info


def _selector(request: Request) -> Selector | None:
    text = request.query_params.get("labelSelector")
    return parse_selector(text) if text else None


def _revision(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    digits = LIMITS.max_resource_version_digits
    if not (text.isascii() and text.isdigit() and len(text) <= digits) or int(text) >= 2**63:
        raise HTTPException(400, f"resourceVersion: {text[:40]!r} is not a resource version")
    return int(text)


def _object_body(info: KindInfo, data: Any, name: str | None = None) -> Object:
    if not isinstance(data, dict):
        raise InvalidObject(["body: an object (mapping) is required"])
    data = dict(data)
    data.setdefault("kind", info.kind)
    if data["kind"] != info.kind:
        raise InvalidObject([f"kind: must be {info.kind} on /api/v1/{info.plural}"])
    obj = parse(data)
    if name is not None and obj.metadata.name != name:
        raise InvalidObject([f"metadata.name: must be {name!r}, the name in the path"])
    return obj


def resource_router(store: Store, enqueue: Enqueue, dependencies: list[Any]) -> APIRouter:
    """Routes under ``/api/v1``; ``dependencies`` carries the caller's authentication."""
    router = APIRouter(prefix="/api/v1", dependencies=dependencies)

    @router.get("")
    async def discovery() -> JSONResponse:
        resources = [{"kind": i.kind, "name": i.plural, "verbs": _VERBS} for i in KIND_INFO]
        resources.append({"kind": "Event", "name": "events", "verbs": ["create", "list"]})
        return JSONResponse(
            {"kind": "APIResourceList", "groupVersion": API_VERSION, "resources": resources}
        )

    @router.get("/{plural}", response_model=None)
    async def list_or_watch(plural: str, request: Request) -> Response:
        info = _info(plural)
        selector = _selector(request)
        since = _revision(request.query_params.get("resourceVersion"))
        if request.query_params.get("watch") in ("true", "1"):
            return await _watch(store, info, selector, since)
        items, revision = await store.list_with_revision(info.model, selector)
        return JSONResponse(
            {
                "apiVersion": API_VERSION,
                "kind": f"{info.kind}List",
                "metadata": {"resourceVersion": str(revision)},
                "items": [to_dict(o) for o in items],
            }
        )

    @router.post("/{plural}", status_code=201)
    async def create(plural: str, request: Request) -> JSONResponse:
        info = _info(plural)
        obj = _object_body(info, await read_body(request))
        stored = await store.create(obj)
        enqueue(info.kind, stored.metadata.name)
        return JSONResponse(to_dict(stored), status_code=201)

    @router.get("/{plural}/{name}")
    async def get(plural: str, name: str) -> JSONResponse:
        return JSONResponse(to_dict(await store.get(_info(plural).model, name)))

    @router.get("/{plural}/{name}/status")
    async def get_status(plural: str, name: str) -> JSONResponse:
        return JSONResponse(to_dict(await store.get(_info(plural).model, name)))

    async def _put(plural: str, name: str, request: Request, *, status: bool) -> JSONResponse:
        info = _info(plural)
        obj = _object_body(info, await read_body(request), name)
        pinned = obj.metadata.resource_version
        for _ in range(WRITE_ATTEMPTS):
            current = await store.get(info.model, name)
            if not pinned:
                obj.metadata.resource_version = current.metadata.resource_version
            if not status:
                check_immutable(info, _identity(to_dict(current)), _identity(to_dict(obj)))
            try:
                stored = await (store.update_status(obj) if status else store.update(obj))
            except Conflict:
                if pinned:
                    raise
                continue
            enqueue(info.kind, name)
            return JSONResponse(to_dict(stored))
        raise Conflict(info.kind, name, "", "changing")

    @router.put("/{plural}/{name}")
    async def update(plural: str, name: str, request: Request) -> JSONResponse:
        return await _put(plural, name, request, status=False)

    @router.put("/{plural}/{name}/status")
    async def update_status(plural: str, name: str, request: Request) -> JSONResponse:
        return await _put(plural, name, request, status=True)

    async def _patch(plural: str, name: str, request: Request, *, status: bool) -> Response:
        info = _info(plural)
        patch = await read_body(request)
        if not isinstance(patch, dict):
            return invalid(["body: a JSON merge patch must be an object"])
        patch = dict(patch)
        if status:
            patch = {"status": patch.get("status", {}), "metadata": patch.get("metadata", {})}
        else:
            patch.pop("status", None)  # the status subresource is the only way to write it
        pinned = (patch.get("metadata") or {}).get("resourceVersion")
        for _ in range(WRITE_ATTEMPTS):
            current = await store.get(info.model, name)
            before = to_dict(current)
            after = merge_patch(before, patch)
            if not isinstance(after.get("metadata"), dict):
                return invalid(["metadata: must be an object"])
            after["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"]
            check_immutable(info, before, after)
            updated = validate(info.model, after)
            if pinned is not None:
                updated.metadata.resource_version = str(pinned)
            try:
                stored = await (store.update_status(updated) if status else store.update(updated))
            except Conflict:
                if pinned is not None:
                    raise
                continue
            enqueue(info.kind, name)
            return JSONResponse(to_dict(stored))
        raise Conflict(info.kind, name, "", "changing")

    @router.patch("/{plural}/{name}", response_model=None)
    async def patch(plural: str, name: str, request: Request) -> Response:
        return await _patch(plural, name, request, status=False)

    @router.patch("/{plural}/{name}/status", response_model=None)
    async def patch_status(plural: str, name: str, request: Request) -> Response:
        return await _patch(plural, name, request, status=True)

    @router.delete("/{plural}/{name}")
    async def delete(plural: str, name: str, request: Request) -> JSONResponse:
        info = _info(plural)
        pinned = request.query_params.get("resourceVersion", "")
        gone = await store.delete(info.model, name, pinned)
        enqueue(info.kind, name)
        return status_response(
            200,
            f"{info.kind.lower()} {name!r} deleted",
            reason="Deleted",
            details={
                "kind": info.kind,
                "name": name,
                "resourceVersion": gone.metadata.resource_version,
            },
        )

    return router


def _identity(data: dict[str, Any]) -> dict[str, Any]:
    """What a PUT may not change, compared without fields the server fills in."""
    meta = data.get("metadata", {})
    return {
        "metadata": {k: meta.get(k) for k in ("name",)},
        "spec": data.get("spec"),
    }


def _line(type_: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def _watch(
    store: Store, info: KindInfo, selector: Selector | None, since: int | None
) -> Response:
    """Start the watch before answering, so a too-old version is a plain 410, not a stream."""
    initial: list[Object] = []
    if since is None:
        initial, since = await store.list_with_revision(info.model, selector)
    changes = store.watch(info.model, since).__aiter__()
    try:
        first = await anext(changes)  # a BOOKMARK at once, or Expired
    except Expired:
        await changes.aclose()  # type: ignore[attr-defined]
        raise
    seen = {o.metadata.name for o in initial}

    async def stream() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[Change | Exception | None] = asyncio.Queue(maxsize=1000)

        async def pump() -> None:
            try:
                async for change in changes:
                    await queue.put(change)
            except Exception as exc:  # delivered to the client as an ERROR line
                await queue.put(exc)
            else:
                await queue.put(None)

        pumping = asyncio.create_task(pump(), name=f"watch:{info.plural}")
        revision = first.revision
        try:
            for obj in initial:
                yield _line("ADDED", to_dict(obj))
            while True:
                try:
                    async with asyncio.timeout(BOOKMARK_SECONDS):  # never loses a cancel
                        item = await queue.get()
                except TimeoutError:
                    yield _bookmark(info, revision)
                    continue
                if item is None:
                    return
                if isinstance(item, Exception):
                    code = 410 if isinstance(item, Expired) else 503
                    yield _line("ERROR", _error_status(code, str(item)))
                    return
                revision = item.revision
                line = _filtered(item, selector, seen)
                if line is not None:
                    yield line
                elif item.type == "BOOKMARK":
                    yield _bookmark(info, revision)
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
            await changes.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(stream(), media_type="application/x-ndjson")


def _filtered(change: Change, selector: Selector | None, seen: set[str]) -> bytes | None:
    obj = change.object
    if obj is None:
        return None
    name = obj.metadata.name
    body = to_dict(obj)
    if change.type == "DELETED":
        if selector is None or name in seen or selector.matches(obj.metadata.labels):
            seen.discard(name)
            return _line("DELETED", body)
        return None
    if selector is None or selector.matches(obj.metadata.labels):
        first = name not in seen and selector is not None
        seen.add(name)
        return _line("ADDED" if first and change.type == "MODIFIED" else change.type, body)
    if name in seen:  # it stopped matching: for this watcher it is gone
        seen.discard(name)
        return _line("DELETED", body)
    return None


def _bookmark(info: KindInfo, revision: int) -> bytes:
    return _line(
        "BOOKMARK",
        {"apiVersion": API_VERSION, "kind": info.kind,
         "metadata": {"resourceVersion": str(revision)}},
    )  # fmt: skip


def _error_status(code: int, message: str) -> dict[str, Any]:
    reason = "Expired" if code == 410 else "ServiceUnavailable"
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
