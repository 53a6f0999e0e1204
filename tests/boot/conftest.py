"""Fixtures: a running boot rig and a fake unit host wired to a fake BMC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.boot.fakes import BootRig, FakeBmc, FakeHost


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BootRig]:
    rig = BootRig(tmp_path / "rack")
    await rig.start()
    try:
        yield rig
    finally:
        await rig.stop()


@pytest.fixture
def bmc(rig: BootRig) -> FakeBmc:
    return rig.bmc()


@pytest.fixture
async def host(tmp_path: Path, bmc: FakeBmc) -> AsyncIterator[FakeHost]:
    host = FakeHost(tmp_path / "unit-storage", bmc)
    try:
        yield host
    finally:
        await host.fake_link.close()
