"""The switch's data path: a userspace TCP relay per route, over links with properties.

A :class:`Link` is one switch port or the uplink: admin state (up/down) and properties
(latency, jitter, loss, bandwidth), with a transmit schedule per direction shared by every
connection that crosses it. A :class:`Relay` listens on one loopback port and forwards each
connection to one target over a path of links (a unit's port then the uplink, or the uplink
then a BMC's port). TLS stays end to end: the relay sees only bytes.

How a chunk of bytes crosses a path: each link's bandwidth is a schedule (a chunk goes out
when the bytes before it have been serialized at the link's rate), then every link's latency
(± jitter, uniform) is added, and the chunk is written at that instant, never before the chunk
ahead of it (a byte stream keeps its order). *Loss* is modelled as what TCP shows the
application: nothing is dropped (the relay carries a stream, not packets); a chunk whose
segments would have lost one waits a retransmission timeout (Linux's 200 ms minimum, or two
path latencies if longer) — toxiproxy makes the same choice. Bytes read ahead of the schedule
are bounded per direction, so a slow link pushes back on the sender as TCP's window does.

Times are wall-clock (the loop's monotonic clock), not the twin's ``SimClock``: the bytes move
over real sockets at real speed, as TLS's CPU cost does, so ``--speed`` does not scale a link.

A link going down aborts every connection that crosses it (both ends see a reset) and refuses
new ones (accepted, then reset), as a cut cable does to a TCP peer that sends. Not here: which
ports exist and where they lead (``_switch``), carrier (the unit's own view of its link).
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
from dataclasses import dataclass, replace
from typing import cast

from racklet.log import get_logger
from racklet.twin.errors import TwinError

log = get_logger("twin")

MIN_RTO_SECONDS = 0.2  # Linux TCP_RTO_MIN
SEGMENT_BYTES = 1448  # an Ethernet MSS with TCP timestamps
SEGMENT_OVERHEAD_BYTES = 90  # per segment on the wire: preamble+IFG 20, Ethernet 18, IP 20, TCP 32
READ_AHEAD_BYTES = 1 << 20  # most bytes one direction of one connection holds in the relay
WRITE_HIGH_WATER = 1 << 20
SLACK_SECONDS = 0.0005  # a chunk due this soon goes now: timers are not finer than that


@dataclass(frozen=True)
class LinkProperties:
    """How a link treats the bytes it carries; ``bandwidth_bps`` None is an unmodelled rate."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    bandwidth_bps: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency_ms) and self.latency_ms >= 0):
            raise TwinError(f"latency must be >= 0 ms, got {self.latency_ms}")
        if not (math.isfinite(self.jitter_ms) and self.jitter_ms >= 0):
            raise TwinError(f"jitter must be >= 0 ms, got {self.jitter_ms}")
        if not 0.0 <= self.loss < 1.0:
            raise TwinError(f"loss must be a fraction from 0 to below 1, got {self.loss}")
        if self.bandwidth_bps is not None and not (
            math.isfinite(self.bandwidth_bps) and self.bandwidth_bps > 0
        ):
            raise TwinError(f"bandwidth must be > 0 bit/s, got {self.bandwidth_bps}")

    @property
    def shaped(self) -> bool:
        return bool(self.latency_ms or self.jitter_ms or self.loss or self.bandwidth_bps)


class Link:
    """One switch port or the uplink: the narrow control interface the fault engine drives.

    ``set_link``, ``set_properties`` and ``reset`` (back to the configured state) are the whole
    interface; ``cut`` resets the connections crossing it without taking the link down.
    """

    def __init__(self, name: str, properties: LinkProperties, rng: random.Random) -> None:
        self.name = name
        self.configured = properties
        self.properties = properties
        self.up = True
        self.changes = 0
        self._rng = rng
        self._free = [0.0, 0.0]  # when each direction (0 toward management, 1 back) is idle
        self._connections: set[_Connection] = set()

    def __repr__(self) -> str:
        return f"Link({self.name!r}, up={self.up}, {self.properties})"

    @property
    def connections(self) -> int:
        """Live relayed connections crossing this link."""
        return len(self._connections)

    def set_link(self, up: bool) -> None:
        """Bring the link up or down; down resets every connection crossing it."""
        if up != self.up:
            self.up = up
            self.changes += 1
            log.info(f"switch link {self.name} {'up' if up else 'down'}")
        if not up:
            self.cut()

    def set_properties(
        self,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
        loss: float | None = None,
        bandwidth_bps: float | None = None,
    ) -> None:
        """Change the properties given (None keeps one); applies to bytes read from now on."""
        changes = {
            key: value
            for key, value in (
                ("latency_ms", latency_ms),
                ("jitter_ms", jitter_ms),
                ("loss", loss),
                ("bandwidth_bps", bandwidth_bps),
            )
            if value is not None
        }
        self.properties = replace(self.properties, **changes)
        log.info(f"switch link {self.name}: {self.properties}")

    def reset(self) -> None:
        """Back to the configured state: up, with the properties the rack was built with."""
        self.properties = self.configured
        self.set_link(True)

    def cut(self) -> None:
        """Reset every connection crossing the link now (the link stays as it is)."""
        for connection in list(self._connections):
            connection.abort()

    def _transmit(self, direction: int, size: int, at: float) -> tuple[float, float]:
        """When ``size`` bytes arriving at ``at`` start out of the link, and the delay after.

        The link forwards a chunk as soon as it is free (cut-through, as a switch does) and
        is then busy for the chunk's serialization time, headers and gaps included (a
        1448-byte segment is 1538 bytes on the wire): over many chunks a stream gets the
        goodput TCP gets on such a link (117.7 MB/s on 1 GbE), and an idle link adds no delay
        to one chunk.
        """
        props = self.properties
        start = at
        if props.bandwidth_bps is not None:
            start = max(at, self._free[direction])
            wire = size + math.ceil(size / SEGMENT_BYTES) * SEGMENT_OVERHEAD_BYTES
            self._free[direction] = start + wire * 8.0 / props.bandwidth_bps
        delay = props.latency_ms / 1000.0
        if props.jitter_ms:
            delay = max(0.0, delay + self._rng.uniform(-props.jitter_ms, props.jitter_ms) / 1000.0)
        if props.loss:
            segments = max(1, math.ceil(size / SEGMENT_BYTES))
            if self._rng.random() >= (1.0 - props.loss) ** segments:
                delay += max(MIN_RTO_SECONDS, 4.0 * props.latency_ms / 1000.0)
        return start, delay


Hop = tuple[Link, int]
"""A link and the direction the connecting side's bytes take on it (0 toward management)."""


class _Flow:
    """One direction of one connection: schedules chunks and writes them when due."""

    def __init__(self, connection: _Connection, hops: list[Hop], back: bool) -> None:
        self._connection = connection
        self._hops = [(link, direction ^ back) for link, direction in hops]
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self._pending = 0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.ended = False
        self._held: list[bytes | None] = []
        self.source: asyncio.Transport | None = None
        self.sink: asyncio.Transport | None = None

    def feed(self, data: bytes | None) -> None:
        """Bytes (or, as None, the end of the stream) read from the source."""
        if self.ended:
            return
        self.ended = data is None
        now = self._loop.time()
        at, delay = now, 0.0
        size = len(data) if data is not None else 0
        for link, direction in self._hops:
            if link.properties.shaped:
                at, extra = link._transmit(direction, size, at)
                delay += extra
        due = max(at + delay, self._last)
        self._last = due
        if due <= now + SLACK_SECONDS and not self._queue:
            self._write(data)
            return
        self._queue.append((due, data))
        self._pending += size
        if self._pending > READ_AHEAD_BYTES:
            self._connection.pause(self, "schedule")
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._drain)

    def _drain(self) -> None:
        self._timer = None
        now = self._loop.time() + SLACK_SECONDS
        while self._queue and self._queue[0][0] <= now:
            _, data = self._queue.popleft()
            self._pending -= len(data) if data is not None else 0
            self._write(data)
        if self._queue:
            self._timer = self._loop.call_at(self._queue[0][0], self._drain)
        if self._pending <= READ_AHEAD_BYTES // 2:
            self._connection.resume(self, "schedule")

    def attach(self, sink: asyncio.Transport) -> None:
        """The socket this flow writes to; what arrived before it existed goes first."""
        self.sink = sink
        held, self._held = self._held, []
        for data in held:
            self._write(data)

    def _write(self, data: bytes | None) -> None:
        sink = self.sink
        if sink is None:  # the target is still connecting (uvloop reads before that)
            self._held.append(data)
            return
        live = sink is not None and not sink.is_closing()
        if data is None:
            if live and sink is not None and sink.can_write_eof():
                sink.write_eof()
            self._connection.eof_delivered()
        elif live and sink is not None:
            sink.write(data)

    def cancel(self) -> None:
        self.ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._pending = 0


class _Connection:
    """A relayed connection: the accepted client socket, the target socket, two flows."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.up = _Flow(self, relay.hops, back=False)  # client → target
        self.down = _Flow(self, relay.hops, back=True)  # target → client
        self.client: asyncio.Transport | None = None
        self.target: asyncio.Transport | None = None
        self._paused: dict[int, set[str]] = {}
        self._closed = 0
        self._eofs = 0

    def eof_delivered(self) -> None:
        """Both directions ended: close both sockets once their buffers are written."""
        self._eofs += 1
        if self._eofs >= 2:
            for transport in (self.client, self.target):
                if transport is not None:
                    transport.close()

    def pause(self, flow: _Flow, why: str) -> None:
        source = flow.source
        if source is None:
            return
        reasons = self._paused.setdefault(id(source), set())
        if not reasons:
            source.pause_reading()
        reasons.add(why)

    def resume(self, flow: _Flow, why: str) -> None:
        source = flow.source
        reasons = self._paused.get(id(source))
        if source is None or not reasons or why not in reasons:
            return
        reasons.discard(why)
        if not reasons and not source.is_closing():
            source.resume_reading()

    def attach(self) -> None:
        for link, _ in self.relay.hops:
            link._connections.add(self)

    def abort(self) -> None:
        """Reset both ends now (a cut link): whatever is scheduled is lost."""
        self.up.cancel()
        self.down.cancel()
        for transport in (self.client, self.target):
            if transport is not None:
                transport.abort()
        self.detach()

    def detach(self) -> None:
        for link, _ in self.relay.hops:
            link._connections.discard(self)
        self.relay._connections.discard(self)

    def side_lost(self, exc: Exception | None) -> None:
        self._closed += 1
        if exc is not None:
            self.abort()
        elif self._closed >= 2:
            self.detach()


class _Side(asyncio.Protocol):
    """One socket of a relayed connection; feeds its flow, follows the peer's write pressure."""

    def __init__(self, connection: _Connection, client: bool) -> None:
        self._connection = connection
        self._client = client
        self._flow = connection.up if client else connection.down
        self._peer_flow = connection.down if client else connection.up

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # uvloop's TCP transport is not a subclass
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._flow.source = transport
        self._peer_flow.attach(transport)
        if self._client:
            self._connection.client = transport
            self._connection.relay._accepted(self._connection, transport)
        else:
            self._connection.target = transport

    def data_received(self, data: bytes) -> None:
        self._flow.feed(data)

    def eof_received(self) -> bool:
        self._flow.feed(None)
        return True  # keep the socket open for the other direction (half close)

    def pause_writing(self) -> None:
        self._connection.pause(self._peer_flow, "sink")

    def resume_writing(self) -> None:
        self._connection.resume(self._peer_flow, "sink")

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self._flow.feed(None)  # a clean close: the other side ends after the last byte
        self._connection.side_lost(exc)


class Relay:
    """Listens on ``127.0.0.1:listen_port`` and forwards to ``target_port`` over ``hops``."""

    def __init__(self, name: str, listen_port: int, target_port: int, hops: list[Hop]) -> None:
        self.name = name
        self.listen_port = listen_port
        self.target_port = target_port
        self.hops = hops
        self.host = "127.0.0.1"
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Side(_Connection(self), client=True), self.host, self.listen_port
        )
        if self.listen_port == 0:
            self.listen_port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for connection in list(self._connections):
            connection.abort()
        if server is not None:
            await server.wait_closed()

    def _accepted(self, connection: _Connection, client: asyncio.Transport) -> None:
        down = [link.name for link, _ in self.hops if not link.up]
        if down:
            client.abort()  # no path: the connection is reset
            return
        client.pause_reading()  # until the target answers
        self._connections.add(connection)
        connection.attach()
        task = asyncio.create_task(self._connect(connection, client), name=f"relay:{self.name}")
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, connection: _Connection, client: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: _Side(connection, client=False), self.host, self.target_port
            )
        except OSError as exc:
            log.debug(f"relay {self.name}: target 127.0.0.1:{self.target_port}: {exc}")
            connection.abort()
            return
        if client.is_closing() or connection not in self._connections:
            connection.abort()
            return
        client.resume_reading()
