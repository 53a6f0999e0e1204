"""Helpers for twin tests: recording firmware and a bounded poll on simulated events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from racklet.hw import Activity, UnitHost
from racklet.twin import RackDescription, SimClock, TwinRack

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
