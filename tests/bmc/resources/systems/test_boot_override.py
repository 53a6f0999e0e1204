"""The boot override through real clients: ``Once`` is used by the next boot and then reads
``Disabled`` (sushy), and a body in a media type other than JSON is refused with 415 and
changes nothing (DMTF's ``redfish`` library)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sushy

import redfish
from racklet.hw import BootSource
from tests.bmc.twin_bench import OPERATOR, UNIT, TwinBmc, running_twin_bmc

SYSTEM = f"/redfish/v1/Systems/{UNIT}"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


def _sushy_system(twin: TwinBmc) -> tuple[Any, Any]:
    auth = sushy.auth.SessionOrBasicAuth(username=OPERATOR[0], password=OPERATOR[1])
    root = sushy.Sushy(twin.url + "/redfish/v1", auth=auth, verify=str(twin.ca))
    return root.get_system(SYSTEM), auth


async def test_a_once_override_is_used_by_the_next_boot_then_disabled(twin: TwinBmc) -> None:
    board = twin.rack.board(UNIT)
    default = board.boot_select.get()
    system, auth = await asyncio.to_thread(_sushy_system, twin)
    try:
        await asyncio.to_thread(
            system.set_system_boot_options,
            sushy.BOOT_SOURCE_TARGET_PXE,
            enabled=sushy.BOOT_SOURCE_ENABLED_ONCE,
        )
        await asyncio.to_thread(system.refresh)
        assert system.boot.enabled == sushy.BOOT_SOURCE_ENABLED_ONCE
        assert board.boot_select.get() == BootSource.NETWORK

        await asyncio.to_thread(system.reset_system, sushy.RESET_ON)  # the next boot
        await asyncio.to_thread(system.refresh)
        assert system.power_state == sushy.POWER_STATE_ON
        assert system.boot.enabled == sushy.BOOT_SOURCE_ENABLED_DISABLED
        assert system.boot.target == sushy.BOOT_SOURCE_TARGET_PXE  # what it was used for

        await asyncio.to_thread(system.reset_system, sushy.RESET_FORCE_OFF)
        assert board.boot_select.get() == default  # the line is released after that boot
    finally:
        await asyncio.to_thread(auth.close)


async def test_a_body_that_is_not_json_is_refused_with_415(twin: TwinBmc) -> None:
    def attempt() -> tuple[int, int, dict[str, Any]]:
        client = redfish.redfish_client(
            base_url=twin.url, username=OPERATOR[0], password=OPERATOR[1], cafile=str(twin.ca)
        )
        client.login(auth="session")
        try:
            # JSON bytes: the library sends them as application/octet-stream.
            boot = json.dumps({"Boot": {"BootSourceOverrideTarget": "Usb"}}).encode()
            patch = client.patch(SYSTEM, body=boot)
            on = json.dumps({"ResetType": "On"}).encode()
            reset = client.post(f"{SYSTEM}/Actions/ComputerSystem.Reset", body=on)
            after = client.get(SYSTEM).dict
            return patch.status, reset.status, after
        finally:
            client.logout()

    patch, reset, system = await asyncio.to_thread(attempt)
    assert (patch, reset) == (415, 415)
    assert system["Boot"]["BootSourceOverrideTarget"] == "None"  # nothing changed
    assert system["PowerState"] == "Off"
    assert not twin.rack.unit(UNIT).powered
