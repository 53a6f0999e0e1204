"""A warm async HTTP client imports nothing per request.

Every heartbeat, Redfish call and RMC poll of a rack goes through httpx's async client. httpcore
asks ``import sniffio`` on each request operation; when sniffio is missing that import fails,
and a failed import searches ``sys.path`` again every time (~130 µs): about a third of an idle
5-unit rack's CPU at ``--speed 50`` (docs/benchmarks.md). Any module looked up on the request
path is such a search, so the test counts every lookup.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

import httpx


class _Lookups(importlib.abc.MetaPathFinder):
    """Records every module the import system had to search for (it never finds one)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        self.names.append(fullname)
        return None


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client closed its connection
    finally:
        writer.close()


async def test_requests_of_a_warm_async_client_search_for_no_module() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lookups = _Lookups()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.post("/heartbeat", json={})).text == "ok"  # warm-up
            sys.meta_path.insert(0, lookups)
            try:
                for _ in range(3):
                    assert (await client.post("/heartbeat", json={})).text == "ok"
            finally:
                sys.meta_path.remove(lookups)
    finally:
        server.close()
        await server.wait_closed()
    assert lookups.names == []
