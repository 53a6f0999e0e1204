"""The bulk-target server: large TUF targets over mutual TLS, the way nginx sends them.

asyncio's TLS encrypts into a memory BIO, copies the records out, buffers them in the
transport and wakes the event loop per chunk; for a 256 MB payload that doubles the server's
CPU per byte (docs/benchmarks.md). Here, as in an nginx worker, one thread runs a selector
loop over non-blocking ``ssl.SSLSocket``s: each connection reads its file with ``readinto``
into its own reused buffer and ``send``s it, one ``SSL_write`` that OpenSSL encrypts straight
onto the TCP socket (its socket BIO), with the GIL released. A thread per connection measured
about 10 % more CPU per byte and less throughput on a busy machine (each wake-up is a separate
scheduling event). kTLS would do better still, but this kernel has none; the context asks for
it anyway (harmless where unavailable).

Scope, deliberately small: ``GET``/``HEAD`` of ``<prefix>/<target path>`` only (the TUF
``targets/`` directory), one byte range at most, HTTP/1.1 keep-alive, no request bodies. Paths
are confined to the targets directory: every segment must match the repository's file-name
rule and is opened relative to its parent with ``O_NOFOLLOW``, so neither ``..`` nor a symlink
leads out. Connections beyond ``max_connections`` wait in the listen backlog; handshakes,
request heads and stalled sends are bounded by deadlines in :class:`BulkLimits`. Metadata,
heartbeats and small files stay on the asyncio machine listener (``racklet.boot.server``),
which also keeps serving targets as the fallback. This module serves bytes; it verifies
nothing (the units do).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import selectors
import socket
import ssl
import stat
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from racklet.log import get_logger
from racklet.net import cert_identity, unit_of

__all__ = ["BULK_PREFIX", "BulkLimits", "BulkTargetServer", "open_target"]

BULK_PREFIX = "/boot/v1/targets/"
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_MAX_DEPTH = 8
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass(frozen=True)
class BulkLimits:
    """Every bound of the bulk server in one place (seconds, bytes, counts)."""

    max_connections: int = 64
    """Connections served at once; more wait in the listen backlog."""
    max_connections_per_source: int = 32
    """Connections one client address may hold at once; one more is closed at accept, so a
    single source cannot take every slot (as ``racklet.limits`` caps the other listeners)."""
    chunk_bytes: int = 256 << 10
    """Read size per ``SSL_write``; each open connection holds one such buffer."""
    max_head_bytes: int = 8192
    max_headers: int = 64
    handshake_timeout: float = 10.0
    request_timeout: float = 15.0
    """Time allowed for a request head to arrive, including keep-alive idle time."""
    send_timeout: float = 30.0
    """Longest stall of one send before a client that stopped reading is dropped."""


class _BadRequest(Exception):
    def __init__(
        self, status: int, message: str, *, close: bool = True, headers: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.close, self.headers = status, message, close, headers


_REASONS = {
    200: "OK",
    206: "Partial Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def open_target(targets_fd: int, name: str) -> int | None:
    """An fd for the regular file ``name`` below the directory ``targets_fd``, or None.

    Each segment is checked against the repository's file-name rule (no ``..``, no hidden
    temp files of a publish in progress) and opened relative to its parent with
    ``O_NOFOLLOW``: a symlink anywhere on the way is refused, so nothing outside is reachable.
    """
    parts = name.split("/")
    if len(parts) > _MAX_DEPTH or not all(_SEGMENT.fullmatch(p) for p in parts):
        return None
    opened: list[int] = []
    try:
        parent = targets_fd
        for part in parts[:-1]:
            parent = os.open(part, _DIR_FLAGS, dir_fd=parent)
            opened.append(parent)
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
    except OSError:
        return None
    finally:
        for dir_fd in opened:
            os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would block or never end
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    keep_alive: bool
    range_header: str | None


def _parse_head(head: bytes, limits: BulkLimits) -> _Request:
    """Strictly parse one request head (without its final CRLF CRLF)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _BadRequest(400, "request head is not ASCII") from exc
    lines = text.split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3:
        raise _BadRequest(400, "malformed request line")
    method, target, version = request_line
    if version not in ("HTTP/1.1", "HTTP/1.0") or not _TOKEN.fullmatch(method):
        raise _BadRequest(400, "malformed request line")
    if not target.startswith("/"):
        raise _BadRequest(400, "request target must be an absolute path")
    if len(lines) - 1 > limits.max_headers:
        raise _BadRequest(431, "too many header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _BadRequest(400, "malformed header field")
        key = name.lower()
        if key in headers and key in ("host", "content-length", "range"):
            raise _BadRequest(400, f"duplicate {key} header")
        headers[key] = value.strip(" \t")
    if version == "HTTP/1.1" and "host" not in headers:
        raise _BadRequest(400, "HTTP/1.1 request without Host")
    if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
        raise _BadRequest(400, "request bodies are not accepted")
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if method not in ("GET", "HEAD"):
        raise _BadRequest(405, f"method {method} not allowed")
    return _Request(method, target, keep_alive, headers.get("range"))


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single range ``header`` asks for as (start, end exclusive); None for the whole
    file. An unsupported or malformed header is ignored (RFC 9110 allows that); an
    unsatisfiable one raises 416."""
    if header is None:
        return None
    unsatisfiable = _BadRequest(
        416, "range not satisfiable", close=False, headers=(f"content-range: bytes */{size}",)
    )
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        length = min(int(last), size)
        if length == 0:
            raise unsatisfiable
        return size - length, size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        raise unsatisfiable
    return start, end


_HANDSHAKE, _HEAD, _SEND = "handshake", "head", "send"
_CHUNKS_PER_TURN = 32  # 8 MiB, then the next ready connection (8 chunks cost ~5 % CPU)


class _Connection:
    """One client connection as a state machine the loop steps whenever its socket is ready:
    TLS handshake, then request heads and responses until close, error or deadline.

    The socket is non-blocking: ``send`` is one ``SSL_write`` that encrypts straight onto the
    socket until it is full, then raises ``SSLWantWriteError`` and is retried with the same
    bytes when the socket drains (OpenSSL keeps its place). Nothing here blocks but
    ``readinto`` of a (normally page-cached) target, as in nginx.
    """

    def __init__(self, server: BulkTargetServer, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self._server = server
        self._limits = server.limits
        self._state = _HANDSHAKE
        self._inbox = b""
        self._out: memoryview | None = None
        self._file: io.FileIO | None = None
        self._remaining = 0
        self._keep_alive = False
        self._buffer: memoryview | None = None
        self._peer = "-"
        self.source = "-"
        """The client's address (the server counts connections per source)."""
        self.deadline = time.monotonic() + self._limits.handshake_timeout

    def step(self) -> int:
        """Advance as far as the socket allows; the selector events to wait for (0: done)."""
        chunks = 0
        try:
            while True:
                if self._state == _SEND and self._out is None:
                    chunks += 1
                    if chunks > _CHUNKS_PER_TURN:
                        return selectors.EVENT_WRITE  # let the other connections have a turn
                if self._state == _HANDSHAKE:
                    self.sock.do_handshake()
                    identity = cert_identity(self.sock.getpeercert())
                    unit = unit_of(identity)
                    if unit is None:  # only units fetch targets (roles: docs/security.md)
                        raise ValueError(f"{identity or 'no role identity'} is not a unit")
                    self._peer = unit
                    self._await_request()
                elif self._state == _HEAD:
                    if not self._read_request():
                        return 0
                elif not self._send():
                    return 0
        except ssl.SSLWantReadError:
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        except (OSError, ValueError) as exc:  # includes refused handshakes and resets
            level = "info" if self._state == _HANDSHAKE else "debug"
            getattr(self._server.logger, level)(
                f"connection ended ({self._state}): {_describe(exc)}", extra={"unit": self._peer}
            )
            return 0

    def _await_request(self) -> None:
        self._state = _HEAD
        self.deadline = time.monotonic() + self._limits.request_timeout

    def _read_request(self) -> bool:
        """Parse a complete head from the inbox, or read more; False when the client left."""
        limits = self._limits
        end = self._inbox.find(b"\r\n\r\n")
        if end < 0:
            if len(self._inbox) > limits.max_head_bytes:
                return self._answer_error(_BadRequest(431, "request head too large"), None)
            data = self.sock.recv(limits.max_head_bytes)
            if not data and self._inbox:
                error = _BadRequest(400, "connection closed inside a request head")
                return self._answer_error(error, None)
            self._inbox += data
            return bool(data)
        head, self._inbox = self._inbox[:end], self._inbox[end + 4 :]
        request: _Request | None = None
        try:
            if end > limits.max_head_bytes:
                raise _BadRequest(431, "request head too large")
            request = _parse_head(head, limits)
            self._start_response(request)
        except _BadRequest as exc:
            return self._answer_error(exc, request)
        return True

    def _start_response(self, request: _Request) -> None:
        path = request.target.split("?", 1)[0]
        if not path.startswith(BULK_PREFIX):
            raise _BadRequest(404, "not found", close=False)
        fd = open_target(self._server.targets_fd, path[len(BULK_PREFIX) :])
        if fd is None:
            raise _BadRequest(404, "not found", close=False)
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(open(fd, "rb", buffering=0))
            info = os.fstat(fd)
            span = _byte_range(request.range_header, info.st_size)
            start, end = span if span is not None else (0, info.st_size)
            if request.method == "GET" and end > start:
                handle.seek(start)
                stack.pop_all()  # the connection owns the file now
                self._file, self._remaining = handle, end - start
                logger = self._server.logger
                logger.info(f"serving {path} [{start}, {end})", extra={"unit": self._peer})
        status = 206 if span is not None else 200
        lines = [
            f"HTTP/1.1 {status} {_REASONS[status]}",
            "content-type: application/octet-stream",
            f"content-length: {end - start}",
            "accept-ranges: bytes",
            f"last-modified: {formatdate(info.st_mtime, usegmt=True)}",
            f'etag: "{info.st_ino:x}-{info.st_mtime_ns:x}-{info.st_size:x}"',
            "cache-control: no-cache",
            f"connection: {'keep-alive' if request.keep_alive else 'close'}",
        ]
        if span is not None:
            lines.append(f"content-range: bytes {start}-{end - 1}/{info.st_size}")
        self._respond(lines, b"", keep_alive=request.keep_alive)

    def _answer_error(self, error: _BadRequest, request: _Request | None) -> bool:
        keep_alive = not error.close and request is not None and request.keep_alive
        lines = [
            f"HTTP/1.1 {error.status} {_REASONS.get(error.status, 'Error')}",
            "content-type: text/plain; charset=utf-8",
            f"content-length: {len(error.message) + 1}",
            f"connection: {'keep-alive' if keep_alive else 'close'}",
            *(["allow: GET, HEAD"] if error.status == 405 else []),
            *error.headers,
        ]
        self._respond(lines, f"{error.message}\n".encode(), keep_alive=keep_alive)
        return True

    def _respond(self, lines: list[str], body: bytes, *, keep_alive: bool) -> None:
        self._out = memoryview(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)
        self._keep_alive = keep_alive
        self._state = _SEND
        self.deadline = time.monotonic() + self._limits.send_timeout

    def _send(self) -> bool:
        """Write what is pending, then the next chunk; False when the connection is done."""
        if self._out is None:
            if self._file is not None and self._remaining > 0:
                if self._buffer is None:
                    self._buffer = memoryview(bytearray(self._limits.chunk_bytes))
                count = self._file.readinto(self._buffer[: min(len(self._buffer), self._remaining)])
                if not count:
                    raise OSError("the target shrank while it was being sent")
                self._remaining -= count
                self._out = self._buffer[:count]
            else:
                self._close_file()
                if not self._keep_alive:
                    return False
                self._await_request()
                return True
        sent = self.sock.send(self._out)
        self._out = self._out[sent:] if sent < len(self._out) else None
        self.deadline = time.monotonic() + self._limits.send_timeout
        return True

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        self._close_file()
        with contextlib.suppress(OSError):
            self.sock.close()


class BulkTargetServer:
    """Serves ``targets_dir`` at ``https://host:port/boot/v1/targets/`` from one loop thread.

    ``context`` must be a server context requiring client certificates (the machine
    listener's, with the rack CA and CRL: ``racklet.pki.server_context_with_crl``, which
    follows the CRL as it changes); only unit identities (``spiffe://<rack>/unit/<name>``)
    are served. Start and
    stop it from the event loop; its thread never touches the asyncio loop.
    """

    def __init__(
        self,
        targets_dir: Path,
        context: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: BulkLimits | None = None,
    ) -> None:
        if context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("the bulk-target server requires client certificates (mutual TLS)")
        with contextlib.suppress(AttributeError):  # Python >= 3.12 names it; harmless without
            context.options |= ssl.OP_ENABLE_KTLS  # type: ignore[attr-defined]
        self.targets_dir = targets_dir
        self.context = context
        self.limits = limits or BulkLimits()
        self.logger = get_logger("boot-bulk")
        self.targets_fd = -1
        self._host = host
        self._port = port
        self._stopping = False
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[int, _Connection] = {}
        self._per_source: dict[str, int] = {}

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The TUF target base URL units fetch targets from."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"https://{host}:{self._port}{BULK_PREFIX}"

    @property
    def stopping(self) -> bool:
        return self._stopping

    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Bind and listen (raising ``OSError`` if the port is taken), then serve in a thread."""
        await asyncio.to_thread(self._bind)
        self._thread = threading.Thread(
            target=self._run, name=f"boot-bulk:{self._port}", daemon=True
        )
        self._thread.start()
        self.logger.info(f"serving large targets at {self.url}")

    def _bind(self) -> None:
        self.targets_fd = os.open(self.targets_dir, _DIR_FLAGS)
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            os.close(self.targets_fd)
            self.targets_fd = -1
            raise OSError(
                exc.errno, f"boot-bulk: cannot listen on {self._host}:{self._port}: {exc.strerror}"
            ) from None
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        self._listener = sock
        self._wake_r, self._wake_w = socket.socketpair()

    def _run(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        limits = self.limits
        tick = min(0.5, limits.handshake_timeout, limits.request_timeout, limits.send_timeout)
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self._listener, selectors.EVENT_READ)
            listening = True
            try:
                while not self._stopping:
                    for key, _ in selector.select(tick):
                        if key.fileobj is self._listener:
                            self._accept(selector)
                        elif key.fileobj is not self._wake_r:
                            self._step(selector, key.data)
                    self._drop_late(selector)
                    full = len(self._connections) >= limits.max_connections
                    if full == listening:  # at the limit, clients wait in the backlog
                        listening = not full
                        if full:
                            selector.unregister(self._listener)
                        else:
                            selector.register(self._listener, selectors.EVENT_READ)
            finally:
                for connection in self._connections.values():
                    connection.close()
                self._connections.clear()
                self._per_source.clear()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        assert self._listener is not None
        try:
            raw, address = self._listener.accept()
        except OSError:
            return  # the client gave up while queued, or no descriptors left: try again later
        source = str(address[0])
        if self._per_source.get(source, 0) >= self.limits.max_connections_per_source:
            self.logger.info(f"refusing a connection: {source} holds too many already")
            raw.close()
            return
        try:
            raw.setblocking(False)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:
            self.logger.info(f"cannot take a connection: {_describe(exc)}")
            raw.close()
            return
        connection = _Connection(self, sock)
        connection.source = source
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._connections[connection.fd] = connection
        selector.register(sock, selectors.EVENT_READ, connection)
        self._step(selector, connection)

    def _step(self, selector: selectors.BaseSelector, connection: _Connection) -> None:
        if self._connections.get(connection.fd) is not connection:
            return  # dropped earlier in this round; its descriptor may already be reused
        events = connection.step()
        if events:
            selector.modify(connection.sock, events, connection)
        else:
            self._forget(selector, connection)

    def _forget(self, selector: selectors.BaseSelector, connection: _Connection) -> None:
        selector.unregister(connection.fd)
        del self._connections[connection.fd]
        held = self._per_source.pop(connection.source, 1) - 1
        if held > 0:
            self._per_source[connection.source] = held
        connection.close()

    def _drop_late(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for connection in [c for c in self._connections.values() if c.deadline < now]:
            self.logger.info("dropping a connection that stalled past its deadline")
            self._forget(selector, connection)

    async def stop(self) -> None:
        """Stop accepting, end every connection (even mid-download) and join the thread."""
        if self._listener is None:
            return
        self._stopping = True
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        assert self._wake_w is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._listener = self._wake_r = self._wake_w = None
        os.close(self.targets_fd)
        self.targets_fd = -1
        self.logger.info("stopped")


def _describe(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())
