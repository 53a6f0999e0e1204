"""The boot server: serves the TUF repository to units over mutual TLS.

The controller mounts :func:`create_boot_app` at ``/boot/v1`` on its machine listener:
``/boot/v1/metadata/<file>`` (TUF metadata, e.g. ``timestamp.json``, ``3.snapshot.json``) and
``/boot/v1/targets/<path>`` (hash-prefixed target files) and, given a peer finder,
``/boot/v1/peers/<path>``: a target's piece table and the units of the rack that run it
(peer-to-peer distribution, ``racklet.boot._p2p``); given ``?sha256=`` (what the unit's TUF
metadata says the target is), only if some unit runs that, else just no peers, so the table
is not computed while nobody could serve a piece (every unit of a rack update asks at once,
and no unit runs the new release yet). Each
response is a snapshot of one file: it is opened once, its size taken from that open file, and
streamed from it in large chunks off the event loop, so a concurrent republish (which replaces
files) never yields a torn or mis-sized body and a 256 MB payload is never held in memory.
Targets are opened the way the bulk-target server (:mod:`racklet.boot._bulk_server`) opens
them: segment by segment, never through a symlink. For large targets that server is the fast
path (about half the CPU per byte); this route stays as the fallback. This module serves
bytes; it verifies nothing (the units do).

Who may read: a unit (``spiffe://<rack>/unit/<name>``) anything; the RMC
(``spiffe://<rack>/rmc``) the metadata and the BMC firmware channel's targets only, which its
``UpdateService.SimpleUpdate`` fetches and passes to a unit's BMC (which verifies them);
anyone else 403.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from racklet.boot._bulk_server import open_target
from racklet.boot._p2p import MAX_PEERS, Peer, PieceTable, compute_piece_table
from racklet.boot._tuf_repo import METADATA_DIR, TARGETS_DIR
from racklet.log import get_logger
from racklet.net import parse_id, peer_identity, unit_of
from racklet.wire import FIRMWARE_CHANNEL

CHUNK_BYTES = 1 << 20
_METADATA_NAME = re.compile(r"([0-9]{1,12}\.)?[a-z0-9][a-z0-9-]{0,62}\.json")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_DEPTH = 8

__all__ = ["CHUNK_BYTES", "PeerFinder", "create_boot_app"]

PeerFinder = Callable[[str, str], Awaitable[list[Peer]]]
"""``(requesting unit, payload SHA-256)`` → the other units of its rack that run it."""
_TABLES_KEPT = 8


class _FileSnapshot(Response):
    """Streams one already-open file; closes it when done or when the client goes away."""

    def __init__(self, handle: BinaryIO, *, media_type: str, head: bool) -> None:
        stat = os.fstat(handle.fileno())
        self._handle = handle
        self._length = stat.st_size
        self._head = head
        super().__init__(media_type=media_type)
        self.headers["content-length"] = str(stat.st_size)
        self.headers["last-modified"] = formatdate(stat.st_mtime, usegmt=True)
        self.headers["etag"] = f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        self.headers["cache-control"] = "no-cache"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self._head:
                await send({"type": "http.response.body", "body": b""})
                return
            remaining = self._length
            while True:
                chunk = await asyncio.to_thread(self._handle.read, min(CHUNK_BYTES, remaining))
                remaining -= len(chunk)
                last = remaining <= 0 or not chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if last:
                    return
        finally:
            await asyncio.to_thread(self._handle.close)


def _resolve(repo_dir: Path, kind: str, name: str) -> tuple[Path, str] | None:
    """Map a request path onto a file in the repository, or None if it cannot name one."""
    if kind == METADATA_DIR:
        if not _METADATA_NAME.fullmatch(name):
            return None
        return repo_dir / METADATA_DIR / name, "application/json"
    parts = name.split("/")
    if len(parts) > _MAX_DEPTH or not all(_SEGMENT.fullmatch(p) for p in parts):
        return None  # also refuses "..", "." and hidden temp files of a publish in progress
    return repo_dir / TARGETS_DIR / Path(*parts), "application/octet-stream"


def _open(repo_dir: Path, path: Path, kind: str, name: str) -> BinaryIO | None:
    """Open a resolved file; targets only below ``targets/`` and never through a symlink."""
    if kind != TARGETS_DIR:
        return open(path, "rb")
    targets = os.open(repo_dir / TARGETS_DIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_target(targets, name)
    finally:
        os.close(targets)
    return None if fd is None else open(fd, "rb")


class _PieceTables:
    """Piece tables of the targets units asked about, by file identity (a republished file
    is a new inode), computed once off the event loop however many units ask at once."""

    def __init__(self) -> None:
        self._tables: dict[tuple[int, int, int, int], PieceTable] = {}
        self._lock = asyncio.Lock()

    async def table(self, handle: BinaryIO) -> PieceTable:
        info = os.fstat(handle.fileno())
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        async with self._lock:
            table = self._tables.get(key)
            if table is None:
                table = await asyncio.to_thread(compute_piece_table, handle.fileno())
                while len(self._tables) >= _TABLES_KEPT:
                    del self._tables[next(iter(self._tables))]
                self._tables[key] = table
            return table


def _peers_route(repo_dir: Path, find: PeerFinder) -> Route:
    tables = _PieceTables()

    async def peers(request: Request) -> Response:
        unit = unit_of(peer_identity(request.scope))
        if unit is None:
            return JSONResponse({"message": "a unit's certificate is required"}, status_code=403)
        name = request.path_params["name"]
        resolved = _resolve(repo_dir, TARGETS_DIR, name)
        handle = None
        if resolved is not None:
            try:
                handle = await asyncio.to_thread(_open, repo_dir, resolved[0], TARGETS_DIR, name)
            except OSError:
                handle = None
        if handle is None:
            return JSONResponse({"message": f"no target {name}"}, status_code=404)
        wanted = request.query_params.get("sha256")
        if wanted is not None and _SHA256.fullmatch(wanted) is None:
            await asyncio.to_thread(handle.close)
            return JSONResponse({"message": "sha256 must be 64 lowercase hex digits"}, 400)
        if wanted is not None and not [p for p in await find(unit, wanted) if p.unit != unit]:
            # nobody runs what the unit expects: no table (hashing a 64 MB payload, while
            # every booting unit of a rack update waits for it, to say "no peers")
            await asyncio.to_thread(handle.close)
            return JSONResponse({"peers": []})
        try:
            table = await tables.table(handle)
        finally:
            await asyncio.to_thread(handle.close)
        found = [p for p in await find(unit, table.sha256) if p.unit != unit][:MAX_PEERS]
        body = table.to_json() | {"peers": [{"unit": p.unit, "url": p.url} for p in found]}
        return JSONResponse(body)

    return Route("/peers/{name:path}", peers, methods=["GET"])


def _reader(identity: str | None, kind: str, name: str) -> str | None:
    """Who reads ``kind/name`` (a unit's name, or ``rmc``), or None: refused."""
    unit = unit_of(identity)
    if unit is not None:
        return unit
    parsed = parse_id(identity)
    rmc = parsed is not None and parsed[1] == "rmc" and parsed[2] is None
    if rmc and (kind == METADATA_DIR or name.startswith(f"{FIRMWARE_CHANNEL}/")):
        return "rmc"
    return None


def create_boot_app(repo_dir: Path, peers: PeerFinder | None = None) -> Starlette:
    """An ASGI app serving ``repo_dir/metadata`` and ``repo_dir/targets`` (a
    :class:`~racklet.boot.TufRepository`'s ``repo_dir``) to clients that presented a verified
    certificate; with ``peers``, also each target's piece table and peers."""
    logger = get_logger("boot-server")

    def handler(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve_file(request: Request) -> Response:
            name = request.path_params["name"]
            peer = _reader(peer_identity(request.scope), kind, name)
            if peer is None:  # units boot; the RMC fetches BMC firmware (docs/security.md)
                return PlainTextResponse("a unit's certificate is required\n", status_code=403)
            resolved = _resolve(repo_dir, kind, name)
            if resolved is None:
                return PlainTextResponse("not found\n", status_code=404)
            path, media_type = resolved
            try:
                handle = await asyncio.to_thread(_open, repo_dir, path, kind, name)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                handle = None
            except OSError as exc:
                logger.warning(f"cannot open {kind}/{name}: {exc}", extra={"unit": peer})
                return PlainTextResponse("unavailable\n", status_code=503)
            if handle is None:
                return PlainTextResponse("not published\n", status_code=404)
            logger.debug(f"serving {kind}/{name}", extra={"unit": peer})
            return _FileSnapshot(handle, media_type=media_type, head=request.method == "HEAD")

        return serve_file

    routes = [
        Route(f"/{kind}/{{name:path}}", handler(kind), methods=["GET", "HEAD"])
        for kind in (METADATA_DIR, TARGETS_DIR)
    ]
    if peers is not None:
        routes.append(_peers_route(repo_dir, peers))
    return Starlette(routes=routes)
