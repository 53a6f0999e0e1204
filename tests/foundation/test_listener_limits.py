"""Every listener (``racklet.net.AppServer``) drops clients that stall before a request's
headers or the TLS handshake end, and caps connections per client address (issue 9, item 5).

Before, 200 TLS connections sending half a request were all still held after 40 s.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from racklet.limits import Limits
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA

LIMITS = Limits(header_timeout=0.5, handshake_timeout=0.5, max_connections_per_source=4)
HEAD = b"GET / HTTP/1.1\r\nHost: rack\r\n\r\n"


@dataclass
class Listener:
    port: int
    client: ssl.SSLContext


async def _hello(_: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    ca = RackCA.create(tmp_path / "pki")
    key, crt = ca.issue("listener").write(tmp_path, "server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = AppServer(
        Starlette(routes=[Route("/", _hello)]),
        port=port,
        ssl_context=server_context(crt, key),
        name="limited",
        limits=LIMITS,
    )
    await server.start()
    try:
        yield Listener(port, client_context(tmp_path / "pki" / "ca.crt"))
    finally:
        await server.stop()


async def _connect(
    listener: Listener, source: str = "127.0.0.1", *, tls: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1",
        listener.port,
        ssl=listener.client if tls else None,
        server_hostname="localhost" if tls else None,
        local_addr=(source, 0),
    )


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server ends the connection (EOF or reset); waits at most 10 s."""
    try:
        async with asyncio.timeout(10):
            return await reader.read(4096) == b""
    except (ConnectionError, ssl.SSLError):
        return True


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(HEAD)
    await writer.drain()
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        return head + await reader.readexactly(5)


async def test_partial_headers_are_dropped_at_the_deadline(listener: Listener) -> None:
    stalled = [await _connect(listener) for _ in range(LIMITS.max_connections_per_source)]
    for _, writer in stalled:
        writer.write(b"GET / HTTP/1.1\r\nHost: ra")  # and then nothing
        await writer.drain()
    assert all([await _closed_by_server(reader) for reader, _ in stalled])

    reader, writer = await _connect(listener)  # the slots are free again
    assert (await _get(reader, writer)).endswith(b"hello")
    writer.write(b"GET / HTTP/1.1\r\n")  # a keep-alive connection's next head is bounded too
    await writer.drain()
    assert await _closed_by_server(reader)
    for _, stale in [*stalled, (reader, writer)]:
        stale.close()


async def test_a_stalled_tls_handshake_is_dropped(listener: Listener) -> None:
    reader, writer = await _connect(listener, tls=False)  # TCP only: no ClientHello ever
    assert await _closed_by_server(reader)
    writer.close()


async def test_one_address_cannot_take_every_connection(listener: Listener) -> None:
    held = [await _connect(listener) for _ in range(LIMITS.max_connections_per_source)]
    for reader, writer in held:
        assert (await _get(reader, writer)).endswith(b"hello")  # keep-alive: still open

    reader, writer = await _connect(listener)  # one more from the same address
    async with asyncio.timeout(10):
        refused = await reader.read()
    assert refused.startswith(b"HTTP/1.1 503") and b"too many open connections" in refused
    writer.close()

    other = await _connect(listener, "127.0.0.2")  # another address is still served
    assert (await _get(*other)).endswith(b"hello")
    other[1].close()

    held[0][1].close()  # one closed: the address may connect again
    await held[0][1].wait_closed()
    for _ in range(50):  # the server notices the close on its next loop turn
        reader, writer = await _connect(listener)
        writer.write(HEAD)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read(4096)
        writer.close()
        if answer.startswith(b"HTTP/1.1 200"):
            break
        await asyncio.sleep(0.02)
    assert answer.startswith(b"HTTP/1.1 200")
    for _, writer in held[1:]:
        writer.close()
