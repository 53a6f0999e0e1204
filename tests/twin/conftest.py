"""Helpers for twin tests: recording firmware, a bounded poll on simulated events, and a
running control endpoint over real mutual TLS."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from racklet.controller._hardware import HardwareControl
from racklet.hw import Activity, UnitHost
from racklet.net import AppServer, server_context
from racklet.pki import RackCA
from racklet.twin import FaultEngine, RackDescription, SimClock, TwinRack
from racklet.twin._control import ControlApp

DEADLINE_SECONDS = 10.0


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` until true; fail after a wall-clock deadline (never a fixed sleep)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


class RecordingFirmware:
    """Boots to RUNNING and idles until asked to shut down; records what happened."""

    def __init__(self) -> None:
        self.starts: dict[str, int] = {}
        self.cancelled: dict[str, int] = {}

    async def __call__(self, host: UnitHost) -> None:
        name = host.storage.name
        self.starts[name] = self.starts.get(name, 0) + 1
        host.console(f"{name} booting")
        host.set_activity(Activity.RUNNING)
        try:
            while not host.shutdown_requested():
                await host.clock.sleep(0.05)
        except asyncio.CancelledError:
            self.cancelled[name] = self.cancelled.get(name, 0) + 1
            raise
        host.console("reboot: System halted")


@pytest.fixture
def firmware() -> RecordingFirmware:
    return RecordingFirmware()


@pytest.fixture
async def make_rack(
    tmp_path: Path, firmware: RecordingFirmware
) -> AsyncIterator[Callable[..., TwinRack]]:
    racks: list[TwinRack] = []

    def make(speed: float = 1000.0, **description: object) -> TwinRack:
        rack = TwinRack(
            RackDescription.model_validate(description),
            SimClock(speed),
            firmware,
            storage_root=tmp_path / "units",
            agent_ports={"unit-1": 9101},
        )
        racks.append(rack)
        return rack

    yield make
    for rack in racks:
        await rack.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Endpoint:
    url: str
    rack: TwinRack
    client: HardwareControl
    pki: Path
    server: AppServer

    async def stop(self) -> None:
        """The hardware side goes away (its listener stops)."""
        await self.server.stop()


@pytest.fixture
async def endpoint(make_rack: Callable[..., TwinRack], tmp_path: Path) -> AsyncIterator[Endpoint]:
    pki = tmp_path / "pki"
    ca = RackCA.create(pki)
    ca.issue("racklet-twin", role="twin").write(pki, "twin")
    ca.issue("racklet-controller", role="controller", server=False, client=True).write(
        pki, "controller"
    )
    ca.issue("unit-1-bmc", role="bmc/unit-1", server=False, client=True).write(pki, "bmc")
    rack = make_rack(units=3)
    await rack.start()
    app = ControlApp(FaultEngine(rack))
    port = free_port()
    context = server_context(
        pki / "twin.crt", pki / "twin.key", ca=pki / "ca.crt", require_client_cert=True
    )
    server = AppServer(app.app, port=port, ssl_context=context, name="test:control")
    await server.start()
    url = f"https://127.0.0.1:{port}"
    client = HardwareControl(url, pki / "ca.crt", pki / "controller.crt", pki / "controller.key")
    try:
        yield Endpoint(url, rack, client, pki, server)
    finally:
        await client.aclose()
        await server.stop()
