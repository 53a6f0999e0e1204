"""The bootstrap's ngclient network seam (``FetcherInterface``), lean enough for 64 MB bodies.

Same contract as :class:`~racklet.boot._tuf_fetch.HttpxFetcher` (mutual TLS, ``https://``
only, bodies read raw, connect timeout, read timeout between two reads, one deadline for the
whole boot, a ``cancel`` event from the async caller), on the standard library's
``http.client``: a body with a ``Content-Length`` is read straight from the TLS socket into
one reused 1 MiB buffer (``readinto1``: one TLS read at a time, so the deadline and the
cancel event are checked after every read, however slowly the server drips) and handed on
in 1 MiB pieces. httpx's per-chunk HTTP machinery cost about as much CPU per byte as the
decryption itself; five units download in one process, so it is paid five times.
Other bodies (chunked, or ended by closing) go through ``http.client``'s own reader.
:meth:`StreamFetcher.views` hands the pieces on without copying them: each is a view of the
reused buffer, valid until the next is asked for (the targets path hashes and writes each
piece before it asks; ``bytes(...)`` of a 1 MiB piece is a memcpy with the GIL held, which
sixteen units downloading in one process pay 4,096 times per 256 MB round).

One kept-alive connection per server (the metadata requests of a boot reuse one TLS
session); a connection whose response was not read to its end is closed, never reused.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from tuf.api import exceptions as tuf_errors

from racklet.boot._tuf_api import FetcherInterface
from racklet.boot._tuf_fetch import check_time

_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "racklet-bootstrap"}
PIECE_BYTES = 1 << 20
_Key = tuple[str, int]


class StreamFetcher(FetcherInterface):
    """Fetch over mutual TLS with ``ssl_context``; close it with :meth:`close`."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        connect_timeout: float,
        read_timeout: float,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        connect_to: Callable[[str, int], tuple[str, int]] | None = None,
    ) -> None:
        self._context = ssl_context
        self._connect_to = connect_to
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._cancel = cancel or threading.Event()
        self._idle: dict[_Key, http.client.HTTPSConnection] = {}
        self._busy: set[http.client.HTTPSConnection] = set()
        """Connections whose body is being read (a body left unread is closed by :meth:`close`
        too, not whenever a traceback holding its generator is collected)."""

    def sibling(
        self,
        ssl_context: ssl.SSLContext,
        connect_to: Callable[[str, int], tuple[str, int]] | None = None,
    ) -> StreamFetcher:
        """A fetcher with another TLS context (pinned to another server: a peer unit) that
        shares this one's timeouts, deadline and cancel event. ``connect_to`` maps a URL's
        host and port to the address the TCP connection goes to (the twin's switch relay
        between two units); TLS still proves the server the context pins."""
        return StreamFetcher(
            ssl_context=ssl_context,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            deadline=self._deadline,
            cancel=self._cancel,
            connect_to=connect_to,
        )

    def close(self) -> None:
        for connection in [*self._idle.values(), *self._busy]:
            connection.close()
        self._idle.clear()
        self._busy.clear()

    def _check_time(self, url: str) -> None:
        check_time(url, self._cancel, self._deadline)

    def _fetch(self, url: str) -> Iterator[bytes]:
        return (bytes(piece) for piece in self.views(url))

    def read_into(self, url: str, start: int, buffer: memoryview) -> None:
        """Bytes ``start`` to ``start + len(buffer)`` of ``url`` (a ``206`` of exactly that
        many), read from the TLS socket straight into ``buffer``: a swarm's piece, without a
        copy through a buffer of the fetcher's own (a fresh one per body, at that)."""
        for _ in self.views(url, (start, start + len(buffer)), into=buffer):
            pass

    def views(
        self,
        url: str,
        byte_range: tuple[int, int] | None = None,
        *,
        into: memoryview | None = None,
    ) -> Iterator[bytes | memoryview]:
        """The body of ``url`` like :meth:`fetch`, without a copy: a piece may be a view of
        the reused buffer, overwritten once the next piece is asked for (consume each piece
        before asking for the next; keep ``bytes(piece)``, never the piece itself).

        ``byte_range`` (start, end exclusive) asks for those bytes only: the answer must be
        ``206`` with exactly that many bytes (a peer's piece, ``racklet.boot._p2p``), read
        into ``into`` if given (as long as the range)."""
        if into is not None and (byte_range is None or len(into) != byte_range[1] - byte_range[0]):
            raise ValueError("views: into must be as long as the byte range")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise tuf_errors.DownloadError(f"refusing a non-HTTPS URL on the boot path: {url}")
        key = (parts.hostname, parts.port or 443)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._check_time(url)
        connection = self._idle.pop(key, None)
        try:
            if connection is None:
                connection = self._connect(key)
            self._busy.add(connection)
            headers = _HEADERS
            if byte_range is not None:
                headers = {**_HEADERS, "Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"}
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
        except BaseException as exc:
            if connection is not None:
                connection.close()
            translated = _translate(url, exc)
            if translated is exc:
                raise
            raise translated from exc
        if response.status >= 400:
            connection.close()
            raise tuf_errors.DownloadHTTPError(
                f"server answered HTTP {response.status} for {url}", response.status
            )
        if byte_range is not None and (
            response.status != 206 or response.length != byte_range[1] - byte_range[0]
        ):
            connection.close()
            raise tuf_errors.DownloadError(
                f"{url} answered HTTP {response.status} with {response.length} bytes, "
                f"not bytes {byte_range[0]}-{byte_range[1] - 1}"
            )
        return self._body(url, key, connection, response, into)

    def _connect(self, key: _Key) -> http.client.HTTPSConnection:
        host, port = key if self._connect_to is None else self._connect_to(*key)
        connection = http.client.HTTPSConnection(
            host, port, context=self._context, timeout=self._connect_timeout
        )
        connection.connect()  # TCP and the TLS handshake, bounded by the connect timeout
        assert connection.sock is not None
        connection.sock.settimeout(self._read_timeout)
        return connection

    def _body(
        self,
        url: str,
        key: _Key,
        connection: http.client.HTTPSConnection,
        response: http.client.HTTPResponse,
        into: memoryview | None = None,
    ) -> Iterator[bytes | memoryview]:
        done = False
        try:
            if response.length is not None and not response.chunked:
                yield from self._sized(url, response, response.length, into)
            else:
                while piece := response.read1(PIECE_BYTES):
                    self._check_time(url)
                    yield piece
            done = True
        except Exception as exc:
            translated = _translate(url, exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            response.close()
            self._busy.discard(connection)
            if done and not response.will_close and key not in self._idle:
                self._idle[key] = connection
            else:
                connection.close()

    def _sized(
        self,
        url: str,
        response: http.client.HTTPResponse,
        length: int,
        into: memoryview | None = None,
    ) -> Iterator[memoryview]:
        """Exactly ``length`` bytes, read one TLS read at a time into a reused buffer (``into``
        if given: then the bytes end up in it), and handed on as views of it."""
        reader = response.fp
        buffer = (
            into if into is not None else memoryview(bytearray(min(PIECE_BYTES, max(length, 1))))
        )
        remaining = length
        while remaining:
            filled = 0
            while filled < len(buffer) and remaining:
                count = reader.readinto1(buffer[filled : filled + min(remaining, len(buffer))])
                if not count:
                    raise http.client.IncompleteRead(b"", remaining)
                filled += count
                remaining -= count
                self._check_time(url)
            yield buffer[:filled]
        response.length = 0  # read to its end: the connection may carry the next request


def _translate(url: str, exc: BaseException) -> BaseException:
    if isinstance(exc, tuf_errors.DownloadError):
        return exc
    if isinstance(exc, TimeoutError | socket.timeout):
        return tuf_errors.SlowRetrievalError(f"{url}: timed out ({exc or 'no data'})")
    if isinstance(exc, OSError | http.client.HTTPException | ValueError):
        text = " ".join(str(exc).split()) or type(exc).__name__
        return tuf_errors.DownloadError(f"cannot fetch {url}: {text}")
    return exc
