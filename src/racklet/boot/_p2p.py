"""Peer-to-peer payload distribution inside a rack: the piece table and the swarm download.

A unit whose OS runs a payload it verified serves it to the other units of its rack (its peer
server's ``/boot/v1/targets/<sha256>``, mutual TLS, this rack's unit identities only). Before a
download the bootstrap asks the boot server ``/boot/v1/peers/<target>``: the controller
answers the target's **piece table** (its SHA-256 per piece, computed from the file it
publishes) and the units whose heartbeat says they run that payload. The bootstrap then pulls
pieces with Range requests from those peers at once, each over a connection pinned to that
peer's identity (``spiffe://<rack>/unit/<peer>``), and writes each piece, once its hash
matches the table, at its offset into the slot's nameless file (direct I/O, from reused
page-aligned buffers: :class:`Swarm`).

What decides is unchanged: the whole file is checked against the TUF-signed length and
hashes before it gets a name; the check is fed the pieces in order as they complete, so the
file is not read back. The piece table is not signed: it only tells early which peer lied,
so that peer is dropped at its first bad piece and the piece fetched again elsewhere.
A controller that lied in the table can only make the swarm fail; the download then starts
over from the bulk server alone.

The controller's bulk-target server stays a source: it serves the pieces the peers cannot
(no peer holds the target yet, or every peer was dropped), so a rack's uplink carries a
payload about once, to the first units, and the switch's unit ports carry the rest.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tuf.api import exceptions as tuf_errors

from racklet.boot._bulk_server import BULK_PREFIX
from racklet.boot._manifest import PAYLOAD_NAME
from racklet.boot._slots import slot_dir
from racklet.log import ContextLogger

PEERS_PATH = "/peers/"
"""Below the boot server's ``/boot/v1``: where a unit asks for a target's peers."""
P2P_PREFIX = BULK_PREFIX
"""Below a unit's peer URL: where it serves the payload it runs, by SHA-256 (the same
server code as the controller's bulk targets, ``racklet.node._p2p``)."""
MAX_PEERS = 4
"""Peers a unit downloads from at once (the controller answers at most this many)."""
MIN_PIECE_BYTES = 64 << 10
MAX_PIECE_BYTES = 4 << 20
TARGET_PIECES = 64
"""A target is cut into about this many pieces (within the bounds above)."""
MAX_PIECES = 1 << 16
_HEX64 = frozenset("0123456789abcdef")


def piece_bytes_for(length: int) -> int:
    """Piece size for a target of ``length`` bytes: ~64 pieces, 64 KiB..4 MiB, 64 KiB steps."""
    wanted = -(-length // TARGET_PIECES)
    rounded = -(-wanted // MIN_PIECE_BYTES) * MIN_PIECE_BYTES
    return max(MIN_PIECE_BYTES, min(MAX_PIECE_BYTES, rounded))


@dataclass(frozen=True)
class PieceTable:
    """A target's length, SHA-256 and the SHA-256 of each of its pieces."""

    sha256: str
    length: int
    piece_bytes: int
    pieces: tuple[str, ...]

    def span(self, index: int) -> tuple[int, int]:
        start = index * self.piece_bytes
        return start, min(start + self.piece_bytes, self.length)

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "length": self.length,
            "pieceBytes": self.piece_bytes,
            "pieces": list(self.pieces),
        }


def compute_piece_table(fd: int, read_bytes: int = 1 << 20) -> PieceTable:
    """Hash the open file ``fd`` whole and piece by piece, from its start (blocking; the boot
    server caches the result). ``fd`` stays open."""
    with open(os.dup(fd), "rb", buffering=0) as handle:
        handle.seek(0)
        length = os.fstat(handle.fileno()).st_size
        size = piece_bytes_for(length)
        whole, pieces = hashlib.sha256(), []
        piece, filled = hashlib.sha256(), 0
        buffer = memoryview(bytearray(min(read_bytes, size)))
        while count := handle.readinto(buffer[: min(len(buffer), size - filled)]):
            whole.update(buffer[:count])
            piece.update(buffer[:count])
            filled += count
            if filled == size:
                pieces.append(piece.hexdigest())
                piece, filled = hashlib.sha256(), 0
        if filled or not pieces:
            pieces.append(piece.hexdigest())
    return PieceTable(whole.hexdigest(), length, size, tuple(pieces))


def slot_payload(storage: Path, slot: str) -> Path:
    """The payload file of a unit's slot: what its agent serves to its peers."""
    return slot_dir(storage, slot) / PAYLOAD_NAME


@dataclass(frozen=True)
class Peer:
    """A unit that runs the target: its name (pinned) and its peer server's URL."""

    unit: str
    url: str

    def target_url(self, sha256: str) -> str:
        return f"{self.url.rstrip('/')}{P2P_PREFIX}{sha256}"


@dataclass(frozen=True)
class SwarmPlan:
    """The boot server's answer for one target: its piece table and who holds it."""

    table: PieceTable
    peers: tuple[Peer, ...]


def _hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX64


def parse_plan(body: bytes, length: int, sha256: str) -> SwarmPlan | None:
    """The answer to ``/boot/v1/peers/<target>``, if it describes the target TUF signed
    (``length``, ``sha256``) with a consistent piece table and at least one peer; else None
    (the download goes to the bulk server alone)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    size, pieces, peers = data.get("pieceBytes"), data.get("pieces"), data.get("peers")
    if data.get("length") != length or data.get("sha256") != sha256 or length <= 0:
        return None
    if not isinstance(size, int) or not MIN_PIECE_BYTES <= size <= MAX_PIECE_BYTES:
        return None
    if (
        not isinstance(pieces, list)
        or len(pieces) != -(-length // size)
        or len(pieces) > MAX_PIECES
    ):
        return None
    if not all(_hex64(p) for p in pieces) or not isinstance(peers, list):
        return None
    found: list[Peer] = []
    for item in peers[:MAX_PEERS]:
        if not isinstance(item, dict):
            return None
        unit, url = item.get("unit"), item.get("url")
        if not isinstance(unit, str) or not isinstance(url, str) or not url.startswith("https://"):
            return None
        found.append(Peer(unit, url))
    if not found:
        return None
    return SwarmPlan(PieceTable(sha256, length, size, tuple(pieces)), tuple(found))


class RangeFetcher(Protocol):
    """What a source needs: one byte range of a URL, read into a buffer
    (``StreamFetcher.read_into``: exactly ``len(buffer)`` bytes from ``start``, or
    ``DownloadError``)."""

    def read_into(self, url: str, start: int, buffer: memoryview) -> None: ...

    def close(self) -> None: ...


class PieceSink(Protocol):
    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...


class WholeCheck(Protocol):
    """The whole-file check (``StreamCheck``), fed the target's bytes in order."""

    def count(self, size: int) -> None: ...

    def update(self, data: bytes | bytearray | memoryview) -> None: ...


class SwarmFailed(Exception):
    """No source could deliver some piece (the caller falls back to the bulk server alone)."""


SPARE_BUFFERS = 3
"""Piece buffers a swarm has beyond one per source: how far past the first piece not yet
checked in order the sources may run."""


@dataclass
class _Source:
    name: str
    url: str
    fetcher: RangeFetcher
    peer: bool
    served: int = 0


@dataclass
class Swarm:
    """Download one target's pieces from its peers and the bulk server into ``sink``, and
    feed ``check`` the whole file in order, without reading it back.

    One thread per source takes the lowest missing piece, fetches it with a Range request into
    a piece buffer and checks it against the table. A peer that fails (bad bytes, refused,
    gone) is dropped for the rest of this download and its piece goes back in the queue; the
    bulk source takes pieces only while no peer is left.

    A good piece is written at once (``sink.write_at``; direct I/O) but keeps its buffer until
    every piece before it was fed to ``check``: whoever completes the first piece not yet fed
    feeds it and every held piece after it. The buffers are a small pool of page-aligned
    ``mmap``s, reused (a fresh 4 MiB ``bytearray`` a piece cost its pages' first-touch faults
    again each time), one per source plus :data:`SPARE_BUFFERS`; a source starts a piece only
    within that many pieces of the first one not yet fed, so it waits for a buffer rather
    than run further ahead, and the piece ``check`` waits for can always be fetched.

    Blocking; :meth:`run` returns once every piece is in ``sink`` and was fed to ``check``
    (the caller still calls ``verify``), or raises :class:`SwarmFailed`.
    """

    table: PieceTable
    sources: list[_Source]
    sink: PieceSink
    check: WholeCheck
    logger: ContextLogger
    notes: list[str]
    cancel: threading.Event = field(default_factory=threading.Event)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(peer, why) of every peer dropped during this download."""
    buffers_made: int = 0
    """Piece buffers allocated (at most one per source plus :data:`SPARE_BUFFERS`)."""
    _pending: list[int] = field(default_factory=list)
    """Pieces nobody fetches yet: a heap, lowest first."""
    _free: list[mmap.mmap] = field(default_factory=list)
    _held: dict[int, mmap.mmap] = field(default_factory=dict)
    """Pieces written but not yet fed to ``check`` (a piece before them is missing)."""
    _fed: int = 0
    """Pieces fed to ``check``: every piece below this index, in order."""
    _feeding: bool = False
    _live_peers: int = 0
    _done: int = 0
    _failure: str | None = None
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def build(
        cls,
        plan: SwarmPlan,
        bulk_url: str,
        bulk: RangeFetcher,
        peer_fetcher: Callable[[Peer], RangeFetcher],
        sink: PieceSink,
        check: WholeCheck,
        logger: ContextLogger,
        notes: list[str],
    ) -> Swarm:
        sources = [_Source("bulk-target server", bulk_url, bulk, peer=False)]
        for peer in plan.peers:
            try:
                fetcher = peer_fetcher(peer)
            except (OSError, ValueError) as exc:  # e.g. no context for a malformed name
                notes.append(f"peer {peer.unit} skipped: {exc}")
                continue
            sources.append(_Source(peer.unit, peer.target_url(plan.table.sha256), fetcher, True))
        return cls(plan.table, sources, sink, check, logger, notes)

    @property
    def window(self) -> int:
        """Pieces that may be in flight or held at once: the bound of the buffer pool."""
        return min(len(self.table.pieces), len(self.sources) + SPARE_BUFFERS)

    def run(self) -> dict[str, int]:
        """Fetch every piece; the bytes each source delivered, by name."""
        self._pending = list(range(len(self.table.pieces)))  # sorted: already a heap
        self._live_peers = sum(1 for s in self.sources if s.peer)
        threads = [
            threading.Thread(target=self._work, args=(s,), name=f"swarm:{s.name}", daemon=True)
            for s in self.sources
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        finally:
            for source in self.sources:
                if source.peer:
                    source.fetcher.close()
            # Unmapped once the last view of them is gone (closing one a traceback still
            # holds a view of would raise BufferError).
            self._free.clear()
            self._held.clear()
        if self._failure is not None:
            raise SwarmFailed(self._failure)
        assert self._fed == len(self.table.pieces)
        return {s.name: s.served for s in self.sources}

    def _next(self, source: _Source) -> tuple[int, mmap.mmap] | None:
        """The next piece for ``source`` and a buffer for it, waiting while the bulk source
        should hold back or the lowest missing piece is a window ahead of the check."""
        with self._lock:
            while True:
                if self._failure is not None or self._done == len(self.table.pieces):
                    return None
                if self.cancel.is_set():
                    self._fail("the download was cancelled")
                    return None
                if (
                    self._pending
                    and (source.peer or self._live_peers == 0)
                    and self._pending[0] < self._fed + self.window
                ):
                    index = heapq.heappop(self._pending)
                    return index, self._buffer()
                self._lock.wait(0.5)  # a piece in flight elsewhere may come back

    def _buffer(self) -> mmap.mmap:
        """A free piece buffer (the window guarantees one: every buffer in use is a piece in
        flight or held, all within the window, and a piece of it is still missing)."""
        if self._free:
            return self._free.pop()
        assert self.buffers_made < self.window
        self.buffers_made += 1
        return mmap.mmap(-1, self.table.piece_bytes)  # page-aligned, for direct I/O

    def _work(self, source: _Source) -> None:
        while (taken := self._next(source)) is not None:
            index, buffer = taken
            start, end = self.table.span(index)
            try:
                with memoryview(buffer) as whole:
                    data = whole[: end - start]
                    source.fetcher.read_into(source.url, start, data)
                    problem = None
                    if not hmac.compare_digest(
                        hashlib.sha256(data).hexdigest(), self.table.pieces[index]
                    ):
                        problem = f"served bad bytes (piece {index}, bytes {start}-{end - 1})"
                    else:
                        self.sink.write_at(start, data)
                    data.release()
            except tuf_errors.DownloadError as exc:
                problem = f"failed: {' '.join(str(exc).split())}"
            except OSError as exc:
                with self._lock:
                    self._free.append(buffer)
                    self._fail(f"unit storage failed during the download: {exc}")
                return
            except Exception as exc:  # a fault of ours, not the peer's: end it, never hang it
                with self._lock:
                    self._free.append(buffer)
                    self._fail(f"the {source.name} source stopped: {exc!r}")
                return
            with self._lock:
                if problem is None:
                    source.served += end - start
                    self._done += 1
                    self._held[index] = buffer
                    feed = not self._feeding and self._fed in self._held
                    self._feeding = self._feeding or feed
                    self._lock.notify_all()
                else:
                    self._free.append(buffer)
                    heapq.heappush(self._pending, index)
                    if source.peer:
                        self._live_peers -= 1
                        self.dropped.append((source.name, problem))
                        line = f"peer {source.name} {problem}; dropped for this download"
                        self.logger.warning(line, extra={"peer": source.name})
                        self.notes.append(line)
                    else:
                        self._fail(f"the bulk-target server {problem}")
                    self._lock.notify_all()
                    return
            if feed:
                self._feed()

    def _feed(self) -> None:
        """Feed ``check`` every held piece from the first not yet fed on, in order, and free
        their buffers (one thread at a time: the one that set ``_feeding``)."""
        while True:
            with self._lock:
                buffer = self._held.pop(self._fed, None)
                if buffer is None or self._failure is not None:
                    self._feeding = False
                    self._lock.notify_all()
                    return
                start, end = self.table.span(self._fed)
            try:
                with memoryview(buffer) as whole:
                    self.check.count(end - start)
                    self.check.update(whole[: end - start])
            except (tuf_errors.DownloadError, tuf_errors.RepositoryError) as exc:
                with self._lock:
                    self._feeding = False
                    self._fail(f"the whole-file check refused the pieces: {exc}")
                return
            with self._lock:
                self._fed += 1
                self._free.append(buffer)
                self._lock.notify_all()

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        self._lock.notify_all()
