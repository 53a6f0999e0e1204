"""The payload is verified while it streams into the inactive slot: what that must guarantee.

Real boot server over mutual TLS, the BMC's real A/B state; the corruption is done by an
attacker in the middle (an override of the payload's URL) that sends the right length.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import logging
import mmap
import os
import time
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from racklet.boot import BootLimits, PayloadError, build_default_payload
from racklet.boot._slots import WRITE_BEHIND_BYTES, SlotWriter
from racklet.boot.client import bootstrap
from tests.boot.fakes import BootRig, FakeBmc, FakeHost, refuse_direct_io

LIMITS = BootLimits(health_deadline_seconds=40.0)
SIZE = 3 << 20  # several of the client's 1 MiB write batches


def _publish(rig: BootRig, version: str) -> tuple[bytes, str]:
    """Publish ``version`` as current; its payload and the URL path units fetch it from."""
    payload = build_default_payload(SIZE, version)
    release = rig.tuf.publish("stable", "racklet-os", version, {"payload.bin": payload})
    file = release.files[0]
    prefix, _, base = file.target_path.rpartition("/")
    return payload, f"/boot/v1/targets/{prefix}/{file.sha256}.{base}"


def _flipping(payload: bytes, offset: int) -> ASGIApp:
    """An ASGI app serving ``payload`` in 64 KiB pieces with one bit flipped at ``offset``."""
    bad = bytearray(payload)
    bad[offset] ^= 0x01

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", str(len(bad)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for start in range(0, len(bad), 65536):
            body = bytes(bad[start : start + 65536])
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_corrupted_download_is_never_committed_nor_booted(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    first = await bootstrap(host, limits=LIMITS)
    assert (first.slot, first.manifest.version) == ("A", "0.1.0")
    slot_a, slot_b = host.storage / "slots" / "A", host.storage / "slots" / "B"
    committed_hash = _sha256(slot_a / "payload.bin")
    good, path = _publish(rig, "0.2.0")
    rig.overrides[path] = _flipping(good, SIZE // 2 + 12345)
    bmc.requests.clear()
    host.lines.clear()

    with pytest.raises(PayloadError, match="length or hash mismatch"):
        await bootstrap(host, limits=LIMITS)

    assert bmc.ops("tryboot") == [] and bmc.ops("commit") == []
    record = bmc.ab.load()
    assert record.committed is not None and record.trying is None and not record.tryboot
    assert (record.committed.slot, record.committed.version) == ("A", "0.1.0")
    assert _sha256(slot_a / "payload.bin") == committed_hash  # the committed slot untouched
    assert (slot_a / "slot.json").exists()
    assert _files(slot_b) == []  # no payload, no record, no partial: nothing to boot
    assert not any("booting racklet-os 0.2.0" in line for line in host.lines)

    del rig.overrides[path]  # the honest server again: the update lands in slot B
    bmc.requests.clear()
    booted = await bootstrap(host, limits=LIMITS)
    assert [(r["slot"], r["version"]) for r in bmc.ops("tryboot")] == [("B", "0.2.0")]
    assert (booted.slot, booted.manifest.version, booted.trial is not None) == ("B", "0.2.0", True)
    assert (slot_b / "payload.bin").read_bytes() == good
    assert _sha256(slot_a / "payload.bin") == committed_hash


class _Tamperer(FakeHost):
    """Swaps the freshly written slot's payload for a same-size altered copy right before the
    warm reboot into it."""

    def console(self, line: str) -> None:
        super().console(line)
        if "try-boot flag set for slot B" in line:
            payload = self.storage / "slots" / "B" / "payload.bin"
            data = bytearray(payload.read_bytes())
            data[-1] ^= 0x01
            swap = payload.with_name("swap")
            swap.write_bytes(bytes(data))
            swap.replace(payload)


async def test_payload_changed_after_its_download_is_not_tried(
    rig: BootRig, bmc: FakeBmc, tmp_path: Path
) -> None:
    """The warm reboot skips re-hashing only a payload file that is exactly as written."""
    host = _Tamperer(tmp_path / "unit", bmc)
    try:
        await bootstrap(host, limits=LIMITS)
        _publish(rig, "0.2.0")
        booted = await bootstrap(host, limits=LIMITS)
    finally:
        await host.fake_link.close()
    assert (booted.slot, booted.manifest.version, booted.trial) == ("A", "0.1.0", None)
    assert any("try-boot of slot B abandoned: slot B is corrupt" in line for line in host.lines)


def _resident_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (``mincore`` of a mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vector = ctypes.create_string_buffer(pages)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY) as m:
        address = ctypes.addressof(ctypes.c_char.from_buffer(m))
        try:
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del address
            gc.collect()  # the from_buffer export must be gone before the mapping closes
    return sum(byte & 1 for byte in vector.raw)


@pytest.mark.parametrize("tail", [0, 1, 4095])
def test_a_direct_slot_writer_keeps_the_payload_out_of_the_page_cache(
    tmp_path: Path, tail: int
) -> None:
    """A download is written once and read again only by the next boot's re-hash: the direct
    writer sends it to the medium without caching it (on a 1 GB board a cached 256 MB payload
    evicts what the OS runs on; on the twin the copy into the cache was the unit's largest
    CPU cost). The bytes are exact whatever the pieces' sizes; a tail that is not a whole
    block goes through the cache; nothing is named before ``keep``."""
    data = os.urandom((8 << 20) + tail)
    kept: dict[bool, Path] = {}
    for direct in (True, False):
        (tmp_path / str(direct)).mkdir()
        with SlotWriter(tmp_path / str(direct), direct=direct) as writer:
            assert writer.direct == direct
            offset = 0
            for size in (7, 70_001, 1 << 20, 3, 2 << 20, 4096) * 4:
                writer.write(data[offset : offset + size])
                offset += size
            writer.write(memoryview(data)[offset:])
            assert _files(tmp_path / str(direct)) == []
            kept[direct] = writer.keep()
    assert _resident_pages(kept[True]) == (1 if tail else 0)
    assert _resident_pages(kept[False]) > 1000  # the buffered writer's 8 MiB are cached
    assert kept[True].read_bytes() == kept[False].read_bytes() == data


@pytest.mark.parametrize("tail", [0, 1234])
def test_a_direct_slot_writer_takes_pieces_out_of_order_past_the_page_cache(
    tmp_path: Path, tail: int
) -> None:
    """A swarm's pieces (64 KiB multiples, from page-aligned ``mmap`` buffers) written in any
    order go straight to the medium; the last piece's tail that is not a whole block goes
    through the cache. The bytes are exact; nothing is named before ``keep``."""
    piece = 256 << 10
    data = os.urandom(8 * piece + tail)
    pieces = [(i * piece, data[i * piece : (i + 1) * piece]) for i in range(-(-len(data) // piece))]
    with SlotWriter(tmp_path, direct=True) as writer, mmap.mmap(-1, piece) as buffer:
        for offset, body in reversed(pieces):
            buffer[: len(body)] = body
            with memoryview(buffer) as view:
                writer.write_at(offset, view[: len(body)])
        assert _files(tmp_path) == []
        kept = writer.keep()
    assert _resident_pages(kept) == (1 if tail else 0)  # before reading it back, below
    assert kept.read_bytes() == data


def test_a_piece_that_does_not_start_on_a_page_lands_through_the_cache(tmp_path: Path) -> None:
    """Direct I/O wants a page-aligned buffer: a piece from anywhere else (here one byte into a
    mapping) is refused by the medium (EINVAL), and the writer puts it, and every piece after
    it, through the page cache, exactly."""
    piece = 64 << 10
    data = os.urandom(4 * piece)
    with SlotWriter(tmp_path, direct=True) as writer, mmap.mmap(-1, piece + 1) as buffer:
        for offset in (2 * piece, 0, 3 * piece, piece):
            buffer[1:] = data[offset : offset + piece]
            with memoryview(buffer) as view:
                writer.write_at(offset, view[1:])
        kept = writer.keep()
    assert _resident_pages(kept) == len(data) // mmap.PAGESIZE  # all through the cache
    assert kept.read_bytes() == data


def test_a_file_system_without_direct_io_gets_the_buffered_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where opening with ``O_DIRECT`` is refused (EINVAL: some FUSE file systems, old tmpfs)
    the writer falls back to the page cache and the download is as exact."""
    refuse_direct_io(monkeypatch)
    data = os.urandom((2 << 20) + 5)
    with SlotWriter(tmp_path, direct=True) as writer:
        assert not writer.direct
        writer.write(data)
        kept = writer.keep()
    assert kept.read_bytes() == data


def test_slot_writer_hands_written_pages_to_the_device_while_the_download_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Write-behind: each 8 MiB written is handed to writeback at once (the real call, only
    watched), so the final fsync waits for the tail; nothing is named before ``keep``."""
    advised: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def watch(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        advised.append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", watch)
    data = os.urandom(1 << 20)
    with SlotWriter(tmp_path, direct=False) as writer:
        for _ in range(20):
            writer.write(data)
        assert advised == [(0, WRITE_BEHIND_BYTES), (WRITE_BEHIND_BYTES, WRITE_BEHIND_BYTES)]
        assert _files(tmp_path) == []  # 20 MiB written, none of it under a name yet
        kept = writer.keep()
    assert kept.read_bytes() == data * 20


async def test_an_update_boot_logs_its_timeline_in_order_on_the_wall_clock(
    rig: BootRig, host: FakeHost, bmc: FakeBmc, caplog: pytest.LogCaptureFixture
) -> None:
    """One ``boot timeline`` line per pass (what ``bench rack_boot`` breaks a boot down by):
    the update pass refreshes, downloads, installs and arms the trial; the warm reboot
    verifies and boots; each step's time is wall-clock and in order."""
    await bootstrap(host, limits=LIMITS)
    _publish(rig, "0.2.0")
    caplog.set_level(logging.INFO, logger="racklet")
    before = time.time()
    await bootstrap(host, limits=LIMITS)
    passes = [
        [pair.split("=") for pair in r.getMessage().split(": ", 1)[1].split()]
        for r in caplog.records
        if r.getMessage().startswith("boot timeline: ")
    ]
    assert [[step for step, _ in steps] for steps in passes] == [
        ["start", "refreshed", "downloaded", "installed", "armed"],
        ["start", "verified"],
    ]
    times = [float(at) for steps in passes for _, at in steps]
    assert before <= times[0] and times == sorted(times) and times[-1] <= time.time()
