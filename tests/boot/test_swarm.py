"""The swarm download on its own (issue 16): pieces land in reused page-aligned buffers, go
to the slot with direct I/O, and feed the whole-file check in order as they complete, without
the file being read back.

The sources are in-memory range servers (``read_into`` as ``StreamFetcher`` does it); the
sink is a real :class:`SlotWriter` and the check the real ``StreamCheck``.
``tests/boot/test_p2p.py`` runs the same swarm over mutual TLS between units.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from racklet.boot import build_default_payload
from racklet.boot._digest import StreamCheck
from racklet.boot._p2p import (
    SPARE_BUFFERS,
    Peer,
    PieceTable,
    Swarm,
    SwarmFailed,
    SwarmPlan,
    compute_piece_table,
)
from racklet.boot._slots import SlotWriter
from racklet.log import get_logger
from tests.boot.fakes import refuse_direct_io

URL = "https://127.0.0.1:1/targets/payload.bin"
LENGTH = (1 << 20) + 1234  # 17 pieces of 64 KiB, the last one 1234 bytes: not a whole block
WAIT = 10.0  # a guard against a hang, never reached when the swarm works


class _Holder:
    """A source holding the whole target: reads a byte range into the caller's buffer once
    ``before(piece)`` returns; the pieces in ``spoil`` come with a bit flipped."""

    def __init__(
        self,
        data: bytes,
        piece_bytes: int,
        before: Callable[[int], None] | None = None,
        spoil: frozenset[int] = frozenset(),
    ) -> None:
        self.data, self.piece_bytes, self.before, self.spoil = data, piece_bytes, before, spoil
        self.asked: list[int] = []
        self.closed = False

    def read_into(self, url: str, start: int, buffer: memoryview) -> None:
        index = start // self.piece_bytes
        self.asked.append(index)
        if self.before is not None:
            self.before(index)
        buffer[:] = self.data[start : start + len(buffer)]
        if index in self.spoil:
            buffer[len(buffer) // 2] ^= 0x01

    def close(self) -> None:
        self.closed = True


class _Recording:
    """The slot writer, noting the offset of each piece written; ``written(n)`` is set once
    ``n`` pieces are in."""

    def __init__(self, writer: SlotWriter) -> None:
        self.writer = writer
        self.offsets: list[int] = []
        self._lock = threading.Lock()
        self._waits: dict[int, threading.Event] = {}

    def written(self, count: int) -> threading.Event:
        with self._lock:
            event = self._waits.setdefault(count, threading.Event())
            if len(self.offsets) >= count:
                event.set()
            return event

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.writer.write_at(offset, data)
        with self._lock:
            self.offsets.append(offset)
            for count, event in self._waits.items():
                if len(self.offsets) >= count:
                    event.set()


def _target(tmp_path: Path) -> tuple[bytes, PieceTable]:
    data = build_default_payload(LENGTH)
    path = tmp_path / "target"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        table = compute_piece_table(handle.fileno())
    assert table.piece_bytes == 64 << 10 and len(table.pieces) == 17
    return data, table


def _swarm(
    table: PieceTable,
    bulk: _Holder,
    peers: dict[str, _Holder],
    sink: _Recording,
    notes: list[str],
) -> tuple[Swarm, StreamCheck]:
    check = StreamCheck(URL, table.length, {"sha256": table.sha256})
    plan = SwarmPlan(table, tuple(Peer(name, f"https://{name}:1") for name in peers))
    swarm = Swarm.build(
        plan,
        URL,
        bulk,
        lambda peer: peers[peer.unit],
        sink,
        check,
        get_logger("bootstrap"),
        notes,
    )
    return swarm, check


@pytest.fixture
def preads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every ``os.pread`` (the old read-back pass), counted."""
    calls: list[int] = []
    real = os.pread

    def counted(fd: int, length: int, offset: int) -> bytes:
        calls.append(offset)
        return real(fd, length, offset)

    monkeypatch.setattr(os, "pread", counted)
    return calls


def test_pieces_completing_out_of_order_give_the_file_and_a_passing_check(
    tmp_path: Path, preads: list[int]
) -> None:
    """A peer sits on the first piece until the other wrote four later ones: those wait in
    their buffers until the first is in, then everything is fed to the whole-file check in
    order. The file is exact, the signed hash matches, the file is never read back, and the
    buffers are a bounded pool, reused (fewer than the pieces)."""
    data, table = _target(tmp_path)
    with SlotWriter(tmp_path, direct=True) as writer:
        sink = _Recording(writer)

        def late(index: int) -> None:
            if index == 0:
                assert sink.written(4).wait(WAIT)

        # whichever peer takes the first piece sits on it; the other carries on
        peers = {name: _Holder(data, table.piece_bytes, late) for name in ("unit-2", "unit-3")}
        bulk = _Holder(data, table.piece_bytes)
        notes: list[str] = []
        swarm, check = _swarm(table, bulk, peers, sink, notes)
        served = swarm.run()
        check.verify()
        kept = writer.keep()
    assert kept.read_bytes() == data
    assert preads == []
    assert sink.offsets != sorted(sink.offsets)  # piece 0 was not the first written
    assert sink.offsets.index(0) >= 4
    assert sorted(sink.offsets) == [i * table.piece_bytes for i in range(17)]
    assert served["unit-2"] + served["unit-3"] == LENGTH and served["bulk-target server"] == 0
    assert swarm.dropped == [] and notes == []
    assert 0 < swarm.buffers_made <= 3 + SPARE_BUFFERS < len(table.pieces)
    assert all(p.closed for p in peers.values()) and not bulk.closed  # the caller's stays open


def test_a_peer_serving_a_bad_piece_is_dropped_and_the_piece_fetched_again(
    tmp_path: Path, preads: list[int]
) -> None:
    data, table = _target(tmp_path)
    liar_served = threading.Event()

    def after_the_liar(index: int) -> None:
        assert liar_served.wait(WAIT)

    def liar_done(index: int) -> None:
        liar_served.set()  # set as its (bad) body starts: it is dropped right after

    with SlotWriter(tmp_path, direct=True) as writer:
        sink = _Recording(writer)
        good = _Holder(data, table.piece_bytes, after_the_liar)
        liar = _Holder(data, table.piece_bytes, liar_done, spoil=frozenset(range(17)))
        notes: list[str] = []
        bulk = _Holder(data, table.piece_bytes)
        swarm, check = _swarm(table, bulk, {"unit-2": good, "unit-3": liar}, sink, notes)
        served = swarm.run()
        check.verify()
        kept = writer.keep()
    assert kept.read_bytes() == data
    assert preads == []
    ((index,),) = [liar.asked]  # one piece asked, refused, then dropped
    start = index * table.piece_bytes
    why = f"served bad bytes (piece {index}, bytes {start}-{start + table.piece_bytes - 1})"
    assert swarm.dropped == [("unit-3", why)]
    assert notes == [f"peer unit-3 {why}; dropped for this download"]
    assert index in good.asked  # fetched again, from the good peer
    assert served == {"bulk-target server": 0, "unit-2": LENGTH, "unit-3": 0}
    assert sorted(sink.offsets) == [i * table.piece_bytes for i in range(17)]


def test_the_swarm_gets_the_buffered_writer_where_direct_io_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preads: list[int]
) -> None:
    """A file system without ``O_DIRECT`` (EINVAL at open): the pieces go through the page
    cache and the file and its check are as exact."""
    refuse_direct_io(monkeypatch)
    data, table = _target(tmp_path)
    with SlotWriter(tmp_path, direct=True) as writer:
        assert not writer.direct
        sink = _Recording(writer)
        holders = {f"unit-{n}": _Holder(data, table.piece_bytes) for n in (2, 3, 4)}
        notes: list[str] = []
        bulk = _Holder(data, table.piece_bytes)
        swarm, check = _swarm(table, bulk, holders, sink, notes)
        swarm.run()
        check.verify()
        kept = writer.keep()
    assert kept.read_bytes() == data
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == table.sha256
    assert preads == [] and notes == []


def test_a_lying_table_fails_the_check_the_swarm_fed(tmp_path: Path) -> None:
    """Pieces that all match a table that is not the signed target's: the swarm completes,
    and the check it fed in order refuses the whole (the caller names nothing)."""
    data, table = _target(tmp_path)
    other = bytearray(data)
    other[5 * table.piece_bytes + 3] ^= 0x01
    (tmp_path / "other").write_bytes(other)
    with open(tmp_path / "other", "rb") as handle:
        lie = compute_piece_table(handle.fileno())
    lie = PieceTable(table.sha256, lie.length, lie.piece_bytes, lie.pieces)
    with SlotWriter(tmp_path, direct=True) as writer:
        sink = _Recording(writer)
        holder = _Holder(bytes(other), table.piece_bytes)
        swarm, check = _swarm(lie, _Holder(data, table.piece_bytes), {"unit-2": holder}, sink, [])
        swarm.run()
        with pytest.raises(Exception, match="does not match expected hash"):
            check.verify()


def test_a_source_that_breaks_ends_the_swarm_instead_of_hanging_it(tmp_path: Path) -> None:
    """A source failing in a way that is no download error (a bug) took its piece with it,
    and the other sources waited for that piece for ever; now the swarm fails at once (the
    bootstrap then downloads from the bulk server alone)."""
    data, table = _target(tmp_path)

    def broken(index: int) -> None:
        if index == 3:
            raise RuntimeError("a bug in the source")

    with SlotWriter(tmp_path, direct=True) as writer:
        swarm, _ = _swarm(
            table,
            _Holder(data, table.piece_bytes),
            {"unit-2": _Holder(data, table.piece_bytes, before=broken)},
            _Recording(writer),
            [],
        )
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                swarm.run()
                outcome.append(None)
            except BaseException as exc:  # the test reports what run() raised
                outcome.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(WAIT)
        assert not worker.is_alive(), "the swarm hung"
    assert isinstance(outcome[0], SwarmFailed)
    assert "unit-2 source stopped" in str(outcome[0]) and "a bug in the source" in str(outcome[0])
