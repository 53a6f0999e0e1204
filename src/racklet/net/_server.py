"""Serve ASGI apps with uvicorn inside an existing event loop, several per process.

uvicorn's own ``serve()`` captures process signals, which is wrong when one process hosts a
dozen services (the twin runs every BMC and every unit agent): the process owner handles
signals and stops each :class:`AppServer`. The HTTP protocol is uvicorn's httptools one,
extended to put the verified TLS peer certificate into the ASGI scope
(``scope["extensions"]["tls"]``) so mutual-TLS endpoints know who is calling.

Every listener bounds its clients with :class:`racklet.limits.Limits`: a TLS handshake and a
request's headers each have a deadline (uvicorn has neither: a client that sends half a
request line holds its connection for ever), and one client address may hold only so many
connections at once; the next one is answered 503 and closed while other addresses are
still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from racklet.limits import LIMITS, Limits
from racklet.log import get_logger

_T = TypeVar("_T")
_COALESCE_BYTES = 64 * 1024


def run_loop(main: Coroutine[Any, Any, _T], *, uvloop: bool = True) -> _T:
    """Run a service process's main coroutine, on uvloop when it is installed.

    uvloop's libuv transports cut the per-request cost of TLS and socket I/O, which is what a
    process serving many BMCs spends much of its time on (+15 to +25 % requests/s for a BMC,
    docs/benchmarks.md). Without uvloop (or with ``uvloop=False``) this is ``asyncio.run``.
    """
    if uvloop:
        try:
            import uvloop as _uvloop
        except ImportError:
            pass
        else:
            return _uvloop.run(main)
    return asyncio.run(main)


class _CoalescingTransport:
    """Hands everything written within one loop iteration to the transport as one write.

    uvicorn writes a response's headers and its body separately; over TLS each write is its
    own record and its own ``send``. Joined, a small Redfish answer costs one of each, which
    is a measurable share of a BMC's per-request time (see docs/benchmarks.md). Everything
    but ``write`` and ``close`` goes straight to the wrapped transport.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._size = 0
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= _COALESCE_BYTES:
            self._flush()  # large bodies go out at once, so flow control sees them

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Admission:
    """Open connections per client address on one listener, within ``Limits``."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.limits = limits
        self.open: Counter[str] = Counter()
        self.log = get_logger(name)

    def admit(self, source: str) -> bool:
        if self.open[source] >= self.limits.max_connections_per_source:
            return False
        self.open[source] += 1
        return True

    def release(self, source: str) -> None:
        self.open[source] -= 1
        if self.open[source] <= 0:
            del self.open[source]


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: 62\r\n\r\n"
    b'{"error":{"code":"Busy","message":"too many open connections"}}'
)


class _PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the TLS peer in the scope and coalesced writes,
    a header-read deadline and the per-source connection cap (bound by :func:`_protocol`)."""

    _peer: dict[str, Any] | None = None
    _admission: _Admission
    _source: str | None = None
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # The handshake is complete by now: the peer certificate is fixed for the connection.
        ssl_object = transport.get_extra_info("ssl_object")
        self._peer = ssl_object.getpeercert() if ssl_object is not None else None
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]
        source = self.client[0] if self.client else "unknown"
        if not self._admission.admit(source):
            self._admission.log.info(f"refused a connection: {source} holds too many")
            self.transport.write(_BUSY)
            self.transport.close()
            return
        self._source = source
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if self._source is not None:
            self._admission.release(self._source)
            self._source = None
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_timer is None:
            timeout = self._admission.limits.header_timeout
            self._head_timer = self.loop.call_later(timeout, self._head_late)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        self._admission.log.info(f"dropped {self._source}: no request headers in time")
        self.transport.abort()  # a client too slow to send headers will not read a 408 either

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": {"peer": self._peer}}  # type: ignore[typeddict-unknown-key]
        self._arm_head_deadline()  # from a request's first byte (idle time is keep-alive's)

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        # uvicorn answers every parser error with 400; a method the parser does not know is
        # "not implemented" (RFC 9110, 501), which is what Redfish clients expect to see.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserInvalidMethodError:
            self._refuse_method()
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")

    def _refuse_method(self) -> None:
        body = b'{"error":{"code":"NotImplemented","message":"HTTP method not implemented"}}'
        head = (
            "HTTP/1.1 501 Not Implemented\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def peer_common_name(scope: Any) -> str | None:
    """The CN of the verified client certificate of this request, if one was presented."""
    peer = (scope.get("extensions") or {}).get("tls", {}).get("peer")
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _protocol(admission: _Admission) -> type[_PeerCertProtocol]:
    """The protocol class of one listener: uvicorn makes instances, we bind its admission."""
    return type("_ListenerProtocol", (_PeerCertProtocol,), {"_admission": admission})


class _QuietServer(uvicorn.Server):
    handshake_timeout = LIMITS.handshake_timeout

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve the one socket :class:`AppServer` bound, with a TLS handshake deadline.

        uvicorn's own start-up leaves asyncio's 60 s handshake timeout, and has nothing to
        add with lifespan off and our own logging.
        """
        assert sockets is not None and len(sockets) == 1
        config = self.config

        loop = asyncio.get_running_loop()

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state={}, _loop=loop
            )

        server = await loop.create_server(
            create_protocol,
            sock=sockets[0],
            ssl=config.ssl,
            backlog=config.backlog,
            ssl_handshake_timeout=self.handshake_timeout if config.ssl else None,
        )
        self.servers = [server]
        self.started = True


STOP_GRACE_SECONDS = 2
"""How long :meth:`AppServer.stop` lets requests in progress finish."""


class AppServer:
    """One ASGI app on one TLS (or loopback) socket, started and stopped by its owner."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int,
        ssl_context: ssl.SSLContext | None,
        name: str,
        insecure_plain_http: bool = False,
        limits: Limits = LIMITS,
    ) -> None:
        """``insecure_plain_http`` is the one, explicit exception to "TLS off loopback": a
        caller that must serve a client unable to speak TLS (a Pi 4's bootloader) names it.
        ``limits`` bounds handshakes, request heads and connections per client address."""
        loopback = host in ("127.0.0.1", "::1", "localhost")
        if ssl_context is None and not loopback and not insecure_plain_http:
            raise ValueError("a listener that is not loopback must use TLS")
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=_protocol(_Admission(name, limits)),
            lifespan="off",
            log_level=logging.WARNING,
            access_log=False,
            ws="websockets-sansio",  # the BMC's serial console; sans-I/O, no deprecated API
            # Nothing sits in front of a Racklet listener: X-Forwarded-* headers are not trusted.
            proxy_headers=False,
            server_header=False,
            # A stop waits this long for open requests, then cancels them: an event stream
            # (the RMC's relay from every BMC, a dashboard's watch) never ends by itself.
            timeout_graceful_shutdown=STOP_GRACE_SECONDS,
        )
        config.load()
        config.ssl = ssl_context  # a ready context: uvicorn would build its own from files
        self.name = name
        self.port = port
        self._host = host
        self._socket: socket.socket | None = None
        self._server = _QuietServer(config)
        self._server.handshake_timeout = limits.handshake_timeout
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind (raising ``OSError`` if the port is taken), then serve in a task."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose ``proto`` says
        # TCP, and with Nagle on, a response written as headers then body waits ~40 ms for
        # the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"{self.name}: cannot listen on {self._host}:{self.port}: {exc.strerror}"
            ) from None
        sock.set_inheritable(False)
        self._socket = sock
        self._task = asyncio.create_task(self._serve(sock), name=f"server:{self.name}")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"{self.name} stopped during start-up")
            await asyncio.sleep(0.01)

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits the process on start-up failure; we must not
            raise OSError(f"{self.name} failed to start (uvicorn exit {exc.code})") from None

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
