"""A small async client for etcd's v3 gRPC JSON gateway (``/v3/kv/*``, ``/v3/watch``, leases).

Plain httpx, because the controller is asyncio and httpx is already its HTTP client: no gRPC
stack, no thread pool. Keys and values are bytes on the wire (base64 in JSON); int64 fields
come back as strings and an absent field is its zero value (proto3 JSON). Every transport
failure or "unavailable" answer becomes :class:`Unavailable`, so callers see one error for
"etcd is not there right now".
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from racklet.store.errors import StoreError, Unavailable

_UNAVAILABLE_CODES = {4, 14}  # gRPC DEADLINE_EXCEEDED, UNAVAILABLE
_COMPACTED_MESSAGE = "required revision has been compacted"


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (etcd's range_end)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> KeyValue:
        return cls(
            key=unb64(raw.get("key")),
            value=unb64(raw.get("value")),
            create_revision=int(raw.get("create_revision", 0)),
            mod_revision=int(raw.get("mod_revision", 0)),
            lease=int(raw.get("lease", 0)),
        )


class Compacted(StoreError):
    """A watch started before etcd's compaction point."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"etcd history was compacted at revision {compact_revision}")
        self.compact_revision = compact_revision


class EtcdGateway:
    def __init__(
        self,
        url: str,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, verify=verify, timeout=timeout)
        self._watch_timeout = httpx.Timeout(timeout, read=None)

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise Unavailable(f"etcd at {self.url} is unreachable: {_describe(exc)}") from exc
        return _answer(self.url, response.status_code, response.content)

    # -- kv ---------------------------------------------------------------------------------

    async def range_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` (sorted by key) and the revision they were read at."""
        answer = await self.call(
            "/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        )
        kvs = [KeyValue.parse(kv) for kv in answer.get("kvs", [])]
        return kvs, revision_of(answer)

    async def get(self, key: bytes) -> tuple[KeyValue | None, int]:
        answer = await self.call("/v3/kv/range", {"key": b64(key)})
        kvs = answer.get("kvs", [])
        return (KeyValue.parse(kvs[0]) if kvs else None), revision_of(answer)

    async def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        answer = await self.call(
            "/v3/kv/txn", {"compare": compare, "success": success, "failure": failure or []}
        )
        return bool(answer.get("succeeded", False)), answer

    async def compact(self, revision: int) -> None:
        await self.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    # -- leases -----------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        answer = await self.call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(answer["ID"])

    async def keepalive(self, lease: int) -> int:
        """Refresh ``lease``; its remaining TTL in seconds (0: it has expired)."""
        answer = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        await self.call("/v3/lease/revoke", {"ID": str(lease)})

    # -- watch ------------------------------------------------------------------------------

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[dict[str, Any]]:
        """Each watch response (``events``, ``header``) for keys under ``prefix`` from
        ``start_revision`` on; :class:`Compacted` if that is before the compaction point."""
        body = {
            "create_request": {
                "key": b64(prefix),
                "range_end": b64(prefix_end(prefix)),
                "start_revision": str(start_revision),
                "prev_kv": True,
                "progress_notify": True,
            }
        }
        try:
            async with self._http.stream(
                "POST", "/v3/watch", json=body, timeout=self._watch_timeout
            ) as response:
                if response.status_code != 200:
                    _answer(self.url, response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    if "error" in message:
                        _answer(self.url, 500, line.encode())
                    result = message.get("result", {})
                    if result.get("canceled"):
                        compacted = int(result.get("compact_revision", 0))
                        if compacted:
                            raise Compacted(compacted)
                        raise Unavailable(f"etcd at {self.url} cancelled the watch")
                    yield result
        except httpx.HTTPError as exc:
            raise Unavailable(f"etcd at {self.url}: watch lost: {_describe(exc)}") from exc
        raise Unavailable(f"etcd at {self.url} ended the watch")

    async def aclose(self) -> None:
        await self._http.aclose()


def revision_of(answer: dict[str, Any]) -> int:
    return int(answer.get("header", {}).get("revision", 0))


def _describe(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__


def _answer(url: str, status: int, content: bytes) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = json.loads(content or b"{}")
    except ValueError as exc:
        raise Unavailable(f"etcd at {url} answered {status} with a non-JSON body") from exc
    if status == 200 and "error" not in answer:
        return answer
    code = int(answer.get("code", 0))
    message = str(answer.get("message") or answer.get("error") or f"HTTP {status}")
    if code in _UNAVAILABLE_CODES or status in (502, 503, 504):
        raise Unavailable(f"etcd at {url}: {message}")
    if _COMPACTED_MESSAGE in message:
        raise Compacted(0)
    raise StoreError(f"etcd at {url}: {message}")
