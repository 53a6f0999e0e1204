"""The switch's relay: bytes intact both ways, latency, bandwidth, loss, a port down cuts.

Real sockets on 127.0.0.1 (ephemeral ports): an echo server behind a unit's port and the
uplink, as a unit's connection to the management side is relayed in a running rack. Times are
only ever asserted as lower bounds (a slow machine makes them longer, never shorter).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from racklet.twin import TwinError
from racklet.twin._relay import LinkProperties
from racklet.twin._switch import TOWARD_MANAGEMENT, Route, TwinSwitch


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Swallows what arrives, then answers with the count (a download's other end)."""
    total = 0
    while data := await reader.read(1 << 16):
        total += len(data)
    writer.write(str(total).encode())
    await writer.drain()
    writer.close()


class Fixture:
    def __init__(self, switch: TwinSwitch, port: int) -> None:
        self.switch = switch
        self.port = port

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def _served(handler: object) -> AsyncIterator[Fixture]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    target = server.sockets[0].getsockname()[1]
    switch = TwinSwitch(2, port_bandwidth_bps=1e9, uplink_bandwidth_bps=1e9)
    hops = [(switch.port("unit-1"), TOWARD_MANAGEMENT), (switch.uplink, TOWARD_MANAGEMENT)]
    await switch.serve([Route("unit-1>machine", 0, target, hops)])
    try:
        yield Fixture(switch, switch._relays[0].listen_port)
    finally:
        await switch.stop()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def echo() -> AsyncIterator[Fixture]:
    async for fixture in _served(_echo):
        yield fixture


@pytest.fixture
async def sink() -> AsyncIterator[Fixture]:
    async for fixture in _served(_sink):
        yield fixture


async def _refused(fixture: Fixture) -> None:
    """A connection through a down link is accepted by the kernel, then reset: no echo."""
    reader, writer = await fixture.open()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        writer.write(b"x")
        await writer.drain()
        await reader.readexactly(1)
    writer.close()


async def _round_trip(fixture: Fixture, payload: bytes) -> tuple[bytes, float]:
    reader, writer = await fixture.open()
    started = time.monotonic()
    writer.write(payload)
    writer.write_eof()
    back = await reader.read(-1)
    writer.close()
    return back, time.monotonic() - started


async def test_bytes_cross_both_ways_intact_and_half_close_ends_the_stream(echo: Fixture) -> None:
    payload = os.urandom(3 << 20)
    back, _ = await _round_trip(echo, payload)
    assert back == payload
    assert echo.switch.port("unit-1").connections == 0, "a closed connection leaves the port"


async def test_latency_on_a_port_shows_in_the_round_trip(echo: Fixture) -> None:
    echo.switch.port("unit-1").set_properties(latency_ms=60.0)
    back, elapsed = await _round_trip(echo, b"ping")
    assert back == b"ping"
    assert elapsed >= 0.12, "one way out and one back, 60 ms each"


async def test_uplink_bandwidth_bounds_a_transfer(sink: Fixture) -> None:
    sink.switch.uplink.set_properties(bandwidth_bps=40e6)  # 5 MB/s
    reader, writer = await sink.open()
    started = time.monotonic()
    writer.write(os.urandom(2 << 20))
    writer.write_eof()
    count = int(await reader.read(-1))
    elapsed = time.monotonic() - started
    writer.close()
    assert count == 2 << 20
    assert elapsed >= (2 << 20) * 8 / 40e6 * 0.95


async def test_loss_is_retransmission_delay_not_lost_bytes(echo: Fixture) -> None:
    echo.switch.port("unit-1").set_properties(loss=0.5)
    payload = os.urandom(256 << 10)
    back, elapsed = await _round_trip(echo, payload)
    assert back == payload, "TCP shows loss as delay; the stream stays whole"
    assert elapsed >= 0.2, "at least one retransmission timeout"


async def test_a_port_down_resets_live_connections_and_refuses_new_ones(echo: Fixture) -> None:
    port = echo.switch.port("unit-1")
    reader, writer = await echo.open()
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    assert port.connections == 1
    port.set_link(False)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        writer.write(b"again")
        await writer.drain()
        await reader.readexactly(5)
    writer.close()
    assert port.connections == 0
    await _refused(echo)
    port.set_link(True)
    back, _ = await _round_trip(echo, b"back")
    assert back == b"back"


async def test_uplink_down_cuts_every_port_and_reset_restores_what_was_built(
    echo: Fixture,
) -> None:
    uplink = echo.switch.uplink
    uplink.set_properties(latency_ms=5.0, bandwidth_bps=1e6)
    uplink.set_link(False)
    await _refused(echo)
    uplink.reset()
    assert uplink.up and uplink.properties == LinkProperties(bandwidth_bps=1e9)
    back, _ = await _round_trip(echo, b"ok")
    assert back == b"ok"


def test_bad_link_properties_name_the_culprit() -> None:
    switch = TwinSwitch(1)
    with pytest.raises(TwinError, match="latency must be >= 0 ms"):
        switch.port("unit-1").set_properties(latency_ms=-1)
    with pytest.raises(TwinError, match="loss must be"):
        switch.uplink.set_properties(loss=1.5)
    with pytest.raises(TwinError, match="bandwidth must be > 0"):
        switch.uplink.set_properties(bandwidth_bps=0)
    with pytest.raises(TwinError, match="no port 'unit-9'"):
        switch.port("unit-9")


def test_bytes_sent_before_the_target_answers_arrive_under_uvloop() -> None:
    """The twin process runs on uvloop, which reads an accepted socket at once: a client that
    speaks first (a TLS ClientHello) must not lose its bytes while the relay still connects."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[bytes]:
        answers = []
        async for fixture in _served(_echo):
            for _ in range(20):
                back, _ = await _round_trip(fixture, b"hello")
                answers.append(back)
        return answers

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == [b"hello"] * 20
    finally:
        loop.close()


async def test_jitter_never_reorders_the_stream(echo: Fixture) -> None:
    echo.switch.port("unit-1").set_properties(latency_ms=10.0, jitter_ms=10.0)
    reader, writer = await echo.open()
    sent = b"".join(i.to_bytes(4, "big") for i in range(2000))
    for offset in range(0, len(sent), 40):  # many small writes, each its own chunk
        writer.write(sent[offset : offset + 40])
        await writer.drain()
    writer.write_eof()
    assert await reader.read(-1) == sent
    writer.close()


async def test_a_unit_reaches_another_units_server_over_both_ports_not_the_uplink() -> None:
    """A peer download (unit-1 fetching from unit-2's peer server) crosses unit-1's port and
    unit-2's, never the uplink; the relay is made at first use and kept; the serving unit's
    port going down cuts the transfer and refuses the next one."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[1]
    switch = TwinSwitch(3)
    port_1 = switch.attach(1, lambda: True)
    # A switch that relays nothing (a test rack without routes): the server's own address.
    assert await asyncio.to_thread(port_1.peer_address, "unit-2", "127.0.0.1", target) == (
        "127.0.0.1",
        target,
    )
    uplink_route = Route("unit-3>machine", 0, target, [(switch.uplink, TOWARD_MANAGEMENT)])
    await switch.serve([uplink_route])
    try:
        address = await asyncio.to_thread(port_1.peer_address, "unit-2", "127.0.0.1", target)
        assert address != ("127.0.0.1", target)
        assert await asyncio.to_thread(port_1.peer_address, "unit-2", "127.0.0.1", target) == (
            address
        ), "one relay per pair of units, reused"
        assert switch.peer_address("unit-1", "unit-9", "127.0.0.1", target) == (
            "127.0.0.1",
            target,
        ), "a unit the switch has no port of is reached as it is"
        fixture = Fixture(switch, address[1])
        reader, writer = await fixture.open()
        writer.write(b"piece 7")
        assert await reader.readexactly(7) == b"piece 7"
        crossing = [switch.port(name).connections for name in ("unit-1", "unit-2", "unit-3")]
        assert crossing == [1, 1, 0] and switch.uplink.connections == 0
        switch.port("unit-2").set_link(False)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            writer.write(b"x")
            await writer.drain()
            await reader.readexactly(1)
        writer.close()
        await _refused(fixture)
        switch.port("unit-2").set_link(True)
        back, _ = await _round_trip(fixture, b"again")
        assert back == b"again"
    finally:
        await switch.stop()
        server.close()
        await server.wait_closed()
