"""The bootstrap's fetcher against the real boot server over mutual TLS."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors

from racklet.boot._stream_fetch import StreamFetcher
from racklet.net import client_context
from tests.boot.fakes import BootRig


def _context(rig: BootRig) -> ssl.SSLContext:
    cert, key = rig.client_identity_files("unit-1")
    return client_context(rig.ca_path, cert, key)


def _get_all(fetcher: StreamFetcher, url: str) -> bytes:
    return b"".join(fetcher.fetch(url))


async def test_bodies_arrive_whole_over_one_kept_alive_connection(rig: BootRig) -> None:
    fetcher = StreamFetcher(ssl_context=_context(rig), connect_timeout=5, read_timeout=5)
    base = f"{rig.url}/boot/v1/"
    try:
        payload = await asyncio.to_thread(_get_all, fetcher, base + rig.payload_path[9:])
        timestamp = await asyncio.to_thread(_get_all, fetcher, base + "metadata/timestamp.json")
        assert len(fetcher._idle) == 1  # the second request reused the first's connection
    finally:
        fetcher.close()
    assert payload == rig.payload
    assert timestamp == (rig.repo / "metadata" / "timestamp.json").read_bytes()


async def test_missing_file_plain_http_and_cancel_are_download_errors(rig: BootRig) -> None:
    fetcher = StreamFetcher(ssl_context=_context(rig), connect_timeout=5, read_timeout=5)
    try:
        with pytest.raises(tuf_errors.DownloadHTTPError, match="HTTP 404"):
            await asyncio.to_thread(_get_all, fetcher, f"{rig.url}/boot/v1/metadata/nope.json")
        with pytest.raises(tuf_errors.DownloadError, match="non-HTTPS"):
            _get_all(fetcher, f"http://127.0.0.1:{rig.port}/boot/v1/metadata/timestamp.json")
    finally:
        fetcher.close()
    power_cut = threading.Event()
    power_cut.set()
    cancelled = StreamFetcher(
        ssl_context=_context(rig), connect_timeout=5, read_timeout=5, cancel=power_cut
    )
    with pytest.raises(tuf_errors.DownloadError, match="cancelled"):
        _get_all(cancelled, f"{rig.url}/boot/v1/metadata/timestamp.json")


async def test_views_hand_the_body_on_without_a_copy_and_fetch_still_gives_bytes(
    tmp_path: Path,
) -> None:
    """The targets path reads a payload through ``views``: every piece a view of the one
    reused buffer (no 1 MiB copy with the GIL held per piece), together the exact body;
    ``fetch`` (ngclient's metadata) still hands out independent bytes."""
    rig = BootRig(tmp_path / "rack", payload_size=(3 << 20) + 12345)
    await rig.start()
    fetcher = StreamFetcher(ssl_context=_context(rig), connect_timeout=5, read_timeout=5)
    url = f"{rig.url}/boot/v1/{rig.payload_path[9:]}"

    def through_views() -> tuple[bytes, set[int]]:
        body, buffers = bytearray(), set()
        for piece in fetcher.views(url):
            assert isinstance(piece, memoryview)
            buffers.add(id(piece.obj))
            body += piece
        return bytes(body), buffers

    try:
        body, buffers = await asyncio.to_thread(through_views)
        chunks = await asyncio.to_thread(lambda: list(fetcher.fetch(url)))
    finally:
        fetcher.close()
        await rig.stop()
    assert body == rig.payload and len(buffers) == 1
    assert len(chunks) == 4 and all(type(chunk) is bytes for chunk in chunks)
    assert b"".join(chunks) == rig.payload
