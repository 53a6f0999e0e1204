"""The bulk-target server: exact bytes to rack-CA clients only, strict HTTP, clean stop."""

from __future__ import annotations

import asyncio
import mmap
import os
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors

from racklet.boot import (
    BulkLimits,
    BulkTargetServer,
    TrustBundle,
    UnitIdentity,
    unit_client_context,
)
from racklet.boot._stream_fetch import StreamFetcher
from racklet.boot._tuf_api import Updater
from racklet.boot._tuf_fetch import HttpxFetcher
from racklet.net import client_context
from racklet.pki import CRL_NAME, RackCA, revoke, server_context_with_crl, write_crl
from tests.boot.fakes import BootRig

PREFIX = "/boot/v1/targets/"


def _context(rig: BootRig) -> ssl.SSLContext:
    pki = rig.root / "pki"
    if not (pki / CRL_NAME).exists():
        write_crl(rig.ca, pki)
    key, cert = rig.ca.issue("racklet-controller", role="controller").write(rig.root, "bulk-server")
    return server_context_with_crl(cert, key, ca=rig.ca_path, crl=pki / CRL_NAME)


async def _start(rig: BootRig, limits: BulkLimits | None = None) -> BulkTargetServer:
    server = BulkTargetServer(rig.repo / "targets", _context(rig), limits=limits)
    await server.start()
    return server


@pytest.fixture
async def bulk(rig: BootRig) -> AsyncIterator[BulkTargetServer]:
    server = await _start(rig)
    try:
        yield server
    finally:
        await server.stop()


def _client(rig: BootRig, name: str = "unit-1") -> ssl.SSLContext:
    cert, key = rig.client_identity_files(name)
    return client_context(rig.ca_path, cert, key)


def _exchange(context: ssl.SSLContext, port: int, request: bytes) -> bytes:
    """Send raw bytes over mutual TLS and read until the server closes."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return received


def _get(path: str, *, extra: str = "", close: bool = True) -> bytes:
    connection = "connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nhost: x\r\n{extra}{connection}\r\n".encode()


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], {k.lower(): v for k, v in headers.items()}, body


def _bulk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("boot-bulk")]


async def test_unit_downloads_a_verified_target_through_tuf(
    rig: BootRig, bulk: BulkTargetServer, tmp_path: Path
) -> None:
    """ngclient refreshes metadata from the machine listener, then fetches the payload target
    from the bulk server (its target base URL) and checks its length and hashes."""
    trust = TrustBundle.from_link(rig.trust())
    identity = UnitIdentity.from_link(rig.identity())
    fetcher = HttpxFetcher(
        ssl_context=unit_client_context(trust, identity), connect_timeout=10, read_timeout=30
    )
    (tmp_path / "meta").mkdir()
    updater = Updater(
        str(tmp_path / "meta"),
        f"{rig.url}/boot/v1/metadata/",
        target_base_url=bulk.url,
        fetcher=fetcher,
        bootstrap=rig.tuf.root_bytes(),
    )

    def fetch() -> bytes:
        try:
            updater.refresh()
            info = updater.get_targetinfo(rig.release.files[0].target_path)
            assert info is not None
            return Path(updater.download_target(info, str(tmp_path / "payload"))).read_bytes()
        finally:
            fetcher.close()

    assert await asyncio.to_thread(fetch) == rig.payload


async def test_large_target_exact_bytes_and_keep_alive(rig: BootRig) -> None:
    data = os.urandom(5 * 65536 + 123)  # several of the server's (small) chunks
    (rig.repo / "targets" / "big.bin").write_bytes(data)
    server = await _start(rig, BulkLimits(chunk_bytes=65536))
    try:
        two = _get(f"{PREFIX}big.bin", close=False) + _get(f"{PREFIX}big.bin")
        response = await asyncio.to_thread(_exchange, _client(rig), server.port, two)
    finally:
        await server.stop()
    first, _, rest = response.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK") and f"content-length: {len(data)}".encode() in first
    assert rest[: len(data)] == data  # the first answer, then the second on the same connection
    status, headers, body = _split(rest[len(data) :])
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
    assert body == data


async def test_head_and_ranges(rig: BootRig, bulk: BulkTargetServer) -> None:
    data = bytes(range(256)) * 40
    (rig.repo / "targets" / "r.bin").write_bytes(data)
    context = _client(rig)

    async def ask(request: bytes) -> tuple[str, dict[str, str], bytes]:
        return _split(await asyncio.to_thread(_exchange, context, bulk.port, request))

    status, headers, body = await ask(f"HEAD {PREFIX}r.bin HTTP/1.0\r\nhost: x\r\n\r\n".encode())
    assert status.startswith("HTTP/1.1 200") and headers["content-length"] == str(len(data))
    assert headers["accept-ranges"] == "bytes" and body == b""
    status, headers, body = await ask(_get(f"{PREFIX}r.bin", extra="range: bytes=100-299\r\n"))
    assert status == "HTTP/1.1 206 Partial Content" and body == data[100:300]
    assert headers["content-range"] == f"bytes 100-299/{len(data)}"
    status, _, body = await ask(_get(f"{PREFIX}r.bin", extra="range: bytes=-7\r\n"))
    assert status.startswith("HTTP/1.1 206") and body == data[-7:]
    status, _, body = await ask(_get(f"{PREFIX}r.bin", extra="range: bytes=9000-\r\n"))
    assert status.startswith("HTTP/1.1 206") and body == data[9000:]
    status, headers, body = await ask(_get(f"{PREFIX}r.bin", extra="range: bytes=20000-\r\n"))
    assert status == "HTTP/1.1 416 Range Not Satisfiable" and body == b"range not satisfiable\n"
    assert headers["content-range"] == f"bytes */{len(data)}"
    status, _, body = await ask(_get(f"{PREFIX}r.bin", extra="range: bytes=1-2,5-6\r\n"))
    assert status.startswith("HTTP/1.1 200") and body == data  # several ranges: whole file


async def test_a_range_is_read_straight_into_the_callers_buffer(
    rig: BootRig, bulk: BulkTargetServer
) -> None:
    """A swarm's piece: ``StreamFetcher.read_into`` puts exactly the range asked for into the
    caller's (page-aligned) buffer, over one kept-alive connection; a range the file does not
    have is a download error, and a buffer of another length a caller's mistake."""
    data = os.urandom(3 << 20)
    (rig.repo / "targets" / "r.bin").write_bytes(data)
    url = f"https://127.0.0.1:{bulk.port}{PREFIX}r.bin"
    fetcher = StreamFetcher(ssl_context=_client(rig), connect_timeout=5, read_timeout=5)

    def read(start: int, length: int) -> bytes:
        with mmap.mmap(-1, length) as buffer, memoryview(buffer) as view:
            fetcher.read_into(url, start, view)
            return bytes(buffer)

    try:
        assert await asyncio.to_thread(read, 100, (1 << 20) + 7) == data[100 : (1 << 20) + 107]
        assert await asyncio.to_thread(read, 2 << 20, 1 << 20) == data[2 << 20 :]
        assert len(fetcher._idle) == 1  # both over one connection
        with pytest.raises(tuf_errors.DownloadError):
            await asyncio.to_thread(read, 3 << 20, 10)
        with pytest.raises(ValueError, match="as long as the byte range"):
            list(fetcher.views(url, (0, 10), into=memoryview(bytearray(9))))
    finally:
        fetcher.close()


@pytest.mark.parametrize("who", ["no certificate", "foreign CA", "revoked"])
async def test_refuses_clients_without_a_valid_rack_identity(
    rig: BootRig, who: str, tmp_path: Path
) -> None:
    (rig.repo / "targets" / "secret.bin").write_bytes(b"s" * 1000)
    if who == "no certificate":
        context = client_context(rig.ca_path)
    elif who == "foreign CA":
        foreign = RackCA.create(tmp_path / "foreign", rack="elsewhere")
        key, cert = foreign.issue("unit-1", server=False, client=True).write(tmp_path, "foreign")
        context = client_context(rig.ca_path, cert, key)
    else:
        cert, key = rig.client_identity_files("stolen")
        write_crl(rig.ca, rig.root / "pki")
        revoke(rig.ca, rig.root / "pki", cert.read_bytes())
        context = client_context(rig.ca_path, cert, key)
    server = await _start(rig)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.to_thread(_exchange, context, server.port, _get(f"{PREFIX}secret.bin"))
        # The same server still serves a unit with a valid identity.
        ok = await asyncio.to_thread(
            _exchange, _client(rig), server.port, _get(f"{PREFIX}secret.bin")
        )
        assert ok.endswith(b"s" * 1000)
    finally:
        await server.stop()


async def test_paths_are_confined_to_the_targets_directory(
    rig: BootRig, bulk: BulkTargetServer
) -> None:
    outside = rig.root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the repository\n")
    targets = rig.repo / "targets"
    (targets / "link.txt").symlink_to(outside / "secret.txt")
    (targets / "linkdir").symlink_to(outside)
    (targets / "sub").mkdir()
    os.mkfifo(targets / "pipe")
    (targets / ".tmp-publish").write_text("half written")
    context = _client(rig)
    for path in (
        f"{PREFIX}../pki/ca.key",
        f"{PREFIX}%2e%2e/pki/ca.key",
        f"{PREFIX}link.txt",
        f"{PREFIX}linkdir/secret.txt",
        f"{PREFIX}sub",
        f"{PREFIX}pipe",
        f"{PREFIX}.tmp-publish",
        f"{PREFIX}sub/../../../outside/secret.txt",
        "/boot/v1/metadata/timestamp.json",
        "/etc/passwd",
    ):
        response = await asyncio.to_thread(_exchange, context, bulk.port, _get(path))
        status, _, body = _split(response)
        assert (status, body) == ("HTTP/1.1 404 Not Found", b"not found\n"), path


async def test_the_asyncio_fallback_refuses_symlinks_too(rig: BootRig) -> None:
    outside = rig.root / "outside.txt"
    outside.write_text("outside the repository\n")
    (rig.repo / "targets" / "link.txt").symlink_to(outside)
    async with rig.client("unit-1") as client:
        linked = await client.get(f"{rig.url}{PREFIX}link.txt")
        payload = await client.get(f"{rig.url}{rig.payload_path}")
    assert linked.status_code == 404 and linked.text == "not published\n"
    assert payload.status_code == 200 and payload.content == rig.payload


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", "400 Bad Request"),
        (b"GET /boot/v1/targets/x HTTP/1.1\r\n\r\n", "400 Bad Request"),  # no Host
        (b"GET /boot/v1/targets/x HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n", "400 Bad Request"),
        (b"GET /boot/v1/targets/x HTTP/2.0\r\nhost: x\r\n\r\n", "400 Bad Request"),
        (b"GET boot/v1/targets/x HTTP/1.1\r\nhost: x\r\n\r\n", "400 Bad Request"),
        (b"GET /x HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc", "400 Bad Request"),
        (b"GET /x HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"a" * 9000 + b"\r\n\r\n", "431"),
        (b"GET /\xff HTTP/1.1\r\nhost: x\r\n\r\n", "400 Bad Request"),
        (b"POST /boot/v1/targets/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", "405"),
    ],
)
async def test_malformed_requests_get_a_clear_error(
    rig: BootRig, bulk: BulkTargetServer, request_bytes: bytes, status: str
) -> None:
    context = _client(rig)

    def send() -> bytes:
        with (
            socket.create_connection(("127.0.0.1", bulk.port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            conn.sendall(request_bytes)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
            return received

    line, headers, body = _split(await asyncio.to_thread(send))
    assert line.startswith(f"HTTP/1.1 {status}")
    assert body.endswith(b"\n") and len(body) == int(headers["content-length"]) > 1
    if status == "405":
        assert headers["allow"] == "GET, HEAD"


async def test_stop_ends_a_download_in_flight_and_leaves_no_thread(rig: BootRig) -> None:
    with (rig.repo / "targets" / "huge.bin").open("wb") as handle:
        handle.truncate(256 << 20)  # far more than the socket buffers hold
    server = await _start(rig)
    context = _client(rig)
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    stopped = threading.Event()

    def stalled_client() -> tuple[bool, int]:
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=60) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            conn.sendall(_get(f"{PREFIX}huge.bin"))
            received = len(conn.recv(65536))
            loop.call_soon_threadsafe(started.set)
            # Read nothing more until stop() returned: the server is blocked in its send, so
            # only the stop itself can end the download.
            stop_returned = stopped.wait(60)
            try:
                while chunk := conn.recv(1 << 20):
                    received += len(chunk)
            except (ssl.SSLError, ConnectionError):
                pass
            return stop_returned, received

    client = asyncio.create_task(asyncio.to_thread(stalled_client))
    await started.wait()
    assert server.active_connections() == 1
    await server.stop()
    stopped.set()
    stop_returned, received = await client
    assert stop_returned, "stop() waited for the client instead of ending the download"
    assert received < (256 << 20)
    assert _bulk_threads() == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


async def test_a_client_that_stops_reading_is_dropped(rig: BootRig) -> None:
    with (rig.repo / "targets" / "huge.bin").open("wb") as handle:
        handle.truncate(256 << 20)
    server = await _start(rig, BulkLimits(send_timeout=0.3))
    context = _client(rig)
    try:

        def stalled_client() -> int:
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=60) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
            ):
                conn.sendall(_get(f"{PREFIX}huge.bin"))
                received = len(conn.recv(65536))
                deadline = time.monotonic() + 60
                while server.active_connections() and time.monotonic() < deadline:
                    threading.Event().wait(0.05)  # not reading: the server's send stalls
                try:
                    while chunk := conn.recv(1 << 20):
                        received += len(chunk)
                except (ssl.SSLError, ConnectionError):
                    pass
                return received

        received = await asyncio.to_thread(stalled_client)
        assert server.active_connections() == 0  # its deadline passed: dropped
        assert received < (256 << 20)
    finally:
        await server.stop()


async def test_an_idle_client_is_dropped_after_the_request_timeout(rig: BootRig) -> None:
    server = await _start(rig, BulkLimits(request_timeout=0.2))
    try:
        received = await asyncio.to_thread(_exchange, _client(rig), server.port, b"")
    finally:
        await server.stop()
    assert received == b""


async def test_refuses_a_context_without_client_certificates(rig: BootRig) -> None:
    key, cert = rig.ca.issue("racklet-controller", role="controller").write(rig.root, "plain")
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    plain.load_cert_chain(cert, key)
    with pytest.raises(ValueError, match="client certificates"):
        BulkTargetServer(rig.repo / "targets", plain)


def _open_from(source: str, port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A mutual-TLS connection from a chosen loopback address, handshake done."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _answers(conn: ssl.SSLSocket) -> bytes:
    """What a GET of the unit's target gets on an open connection (b"" if it was dropped)."""
    try:
        conn.sendall(_get(PREFIX + "missing.bin"))
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return received
    except OSError:
        return b""


async def test_one_source_cannot_hold_every_connection(rig: BootRig) -> None:
    server = await _start(rig, BulkLimits(max_connections_per_source=2))
    context = _client(rig)
    held: list[ssl.SSLSocket] = []
    try:
        for _ in range(2):
            held.append(await asyncio.to_thread(_open_from, "127.0.0.1", server.port, context))

        def third_from_the_same_source() -> bytes:
            try:
                conn = _open_from("127.0.0.1", server.port, context)
            except OSError:
                return b""  # closed during the handshake: refused
            with conn:
                return _answers(conn)

        def one_from_another_source() -> bytes:
            with _open_from("127.0.0.2", server.port, context) as conn:
                return _answers(conn)

        assert await asyncio.to_thread(third_from_the_same_source) == b""
        other = await asyncio.to_thread(one_from_another_source)
        assert other.startswith(b"HTTP/1.1 404"), other[:80]
        held.pop().close()  # a slot of the first source is free again
        again = await asyncio.to_thread(third_from_the_same_source)
        assert again.startswith(b"HTTP/1.1 404"), again[:80]
    finally:
        for conn in held:
            conn.close()
        await server.stop()
