"""A fake BMC board (every racklet.hw protocol), clocks, and a BMC served over real TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.hw import BmcBoard, BootSource, LinkHandler, PowerReading
from racklet.link import LinkClient
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA

UNIT = "unit-1"
ADMIN = ("admin", "correct horse battery")
READER = ("reader", "read only please")


class ManualClock:
    """Simulated time that moves only when the test calls :meth:`advance`."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + max(0.0, seconds), future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self.now]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self.now]
        for _, future in due:
            if not future.done():
                future.set_result(None)


class FastClock:
    """Simulated time running ``speed`` times faster than the host's (like the twin's)."""

    def __init__(self, speed: float = 50.0) -> None:
        self.speed = speed
        self._origin = asyncio.get_running_loop().time()

    def monotonic(self) -> float:
        return (asyncio.get_running_loop().time() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


@dataclass
class FakeUnit:
    """The electrical behaviour of a unit as its BMC sees it."""

    running_watts: float = 3.2
    halted_watts: float = 0.4
    volts: float = 5.1
    on: bool = False
    halted: bool = False
    halts_on_request: bool = True
    present: bool = True
    monitor_fails: bool = False
    celsius: float = 41.5
    switch_log: list[bool] = field(default_factory=list)
    resets: int = 0
    shutdown_requests: int = 0

    def watts(self) -> float:
        if not self.on:
            return 0.0
        return self.halted_watts if self.halted else self.running_watts


class FakeSwitch:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def is_on(self) -> bool:
        return self._unit.on

    def set(self, on: bool) -> None:
        if on and not self._unit.on:
            self._unit.halted = False
        self._unit.on = on
        self._unit.switch_log.append(on)


class FakeReset:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def pulse(self) -> None:
        self._unit.resets += 1
        self._unit.halted = False


class FakeShutdownRequest:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def pulse(self) -> None:
        self._unit.shutdown_requests += 1
        if self._unit.halts_on_request:
            self._unit.halted = True


class FakeBootSelect:
    def __init__(self) -> None:
        self.source = BootSource.SD_CARD

    def get(self) -> BootSource:
        return self.source

    def set(self, source: BootSource) -> None:
        self.source = source


class FakeMonitor:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def read(self) -> PowerReading:
        if self._unit.monitor_fails:
            raise OSError(121, "Remote I/O error")
        watts = self._unit.watts()
        volts = self._unit.volts if self._unit.on else 0.0
        return PowerReading(volts=volts, amperes=watts / volts if volts else 0.0, watts=watts)


class FakeTemperature:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def read_celsius(self) -> float:
        return self._unit.celsius


class FakePresence:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def is_present(self) -> bool:
        return self._unit.present


class FakeUart:
    def __init__(self) -> None:
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def write(self, data: bytes) -> None:
        self._chunks.put_nowait(data)

    async def read(self) -> bytes:
        return await self._chunks.get()


class FakeLink:
    """The backplane as a socket pair per connection the unit opens."""

    def __init__(self) -> None:
        self._handler: asyncio.Future[LinkHandler] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, handler: LinkHandler) -> None:
        self._handler = asyncio.get_running_loop().create_future()
        self._handler.set_result(handler)
        try:
            await asyncio.Event().wait()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def connect(self) -> LinkClient:
        for _ in range(500):
            if self._handler is not None:
                break
            await asyncio.sleep(0.01)
        assert self._handler is not None, "the BMC never served the link"
        handler = await self._handler
        bmc_sock, unit_sock = socket.socketpair()
        bmc_reader, bmc_writer = await asyncio.open_connection(sock=bmc_sock)

        async def serve_one() -> None:
            await handler(bmc_reader, bmc_writer)

        task = asyncio.create_task(serve_one())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        reader, writer = await asyncio.open_connection(sock=unit_sock)
        return LinkClient(reader, writer)


@dataclass
class Bench:
    """One BMC on a fake board, served over TLS with a test CA."""

    unit: FakeUnit
    board: BmcBoard
    uart: FakeUart
    link: FakeLink
    boot_select: FakeBootSelect
    service: BmcService
    url: str
    ca: Path
    state_dir: Path

    def client(self, auth: tuple[str, str] | None = ADMIN) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, verify=client_context(self.ca), auth=auth, timeout=10.0
        )


def make_board(
    unit: FakeUnit, clock: object
) -> tuple[BmcBoard, FakeUart, FakeLink, FakeBootSelect]:
    uart, link, select = FakeUart(), FakeLink(), FakeBootSelect()
    board = BmcBoard(
        unit=UNIT,
        clock=clock,  # type: ignore[arg-type]
        power_switch=FakeSwitch(unit),
        reset=FakeReset(unit),
        shutdown_request=FakeShutdownRequest(unit),
        boot_select=select,
        power_monitor=FakeMonitor(unit),
        temperature=FakeTemperature(unit),
        presence=FakePresence(unit),
        uart=uart,
        link=link,
        max_power_watts=15.0,
    )
    return board, uart, link, select


def make_state_dir(root: Path) -> tuple[Path, Path]:
    """A BMC state dir as ``racklet up`` prepares it; returns it and the CA bundle."""
    ca = RackCA.create(root / "pki")
    state = root / "bmc" / UNIT
    state.mkdir(parents=True)
    ca.issue(f"{UNIT}-bmc", role=f"bmc/{UNIT}").write(state, "server")
    ca.issue(UNIT, role=f"unit/{UNIT}", server=True, client=True).write(state, "identity")
    trust = {
        "bootServer": "https://127.0.0.1:9443",
        "tufRoot": '{"signed": {"_type": "root"}, "signatures": []}',
        "channel": "stable",
        "caBundle": ca.cert_pem.decode(),
    }
    (state / "trust.json").write_text(json.dumps(trust))
    write_accounts(state / "accounts.json", *ADMIN)
    write_accounts(state / "accounts.json", *READER, role="ReadOnly")
    return state, root / "pki" / "ca.crt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_bench(
    tmp_path: Path, clock: object, unit: FakeUnit | None = None, **settings: Any
) -> AsyncIterator[Bench]:
    """A BMC over TLS on a fake board; ``settings`` go to its BmcSettings."""
    unit = unit or FakeUnit()
    state, ca = make_state_dir(tmp_path)
    board, uart, link, select = make_board(unit, clock)
    service = BmcService(
        board,
        BmcSettings(unit=UNIT, state_dir=state, firmware_version="racklet-bmc test", **settings),
    )
    port = free_port()
    server = AppServer(
        service.app,
        port=port,
        ssl_context=server_context(state / "server.crt", state / "server.key"),
        name="bmc-test",
    )
    await service.start()
    try:
        await server.start()
        try:
            yield Bench(
                unit, board, uart, link, select, service, f"https://127.0.0.1:{port}", ca, state
            )
        finally:
            await server.stop()
    finally:
        await service.stop()


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async with running_bench(tmp_path, FastClock(speed=50.0)) as running:
        yield running


async def eventually(predicate: object, what: str, limit: float = 10.0) -> None:
    """Poll ``predicate`` (sync or async) until true, for at most ``limit`` wall seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
