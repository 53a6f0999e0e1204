"""The unit's OS slots in FirmwareInventory follow its A/B state through a whole update, as a
unit drives it over the backplane link (a real BMC, its real A/B state): which slot runs
(``Active``), a trial the next boot tries (``Staged``), a trial running and not committed
(Health ``Warning``), the version each slot holds (the one a commit left too) and the
rollback floor (``LowestSupportedVersion``). The controller reads these into a unit's status
for the dashboard's unit view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bmc.conftest import Bench, ManualClock, running_bench

INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
OLD, NEW = "a" * 64, "b" * 64


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    """A BMC on a clock that stands still (the A/B state reads it in a worker thread)."""
    async with running_bench(tmp_path, ManualClock()) as running:
        yield running


async def _slots(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    found = {}
    for name in ("A", "B"):
        body = (await http.get(f"{INVENTORY}/slot-{name.lower()}")).json()
        found[name] = {
            "version": body["Version"],
            "active": body["Active"],
            "staged": body["Staged"],
            "health": body["Status"]["Health"],
            "floor": body.get("LowestSupportedVersion"),
        }
    return found


async def _link(bench: Bench, op: str, **fields: Any) -> dict[str, Any]:
    client = await bench.link.connect()
    try:
        return dict(await client.request(op, **fields))
    finally:
        await client.close()


async def test_a_trial_then_a_commit_show_in_the_slots(bench: Bench) -> None:
    async with bench.client() as http:
        await _link(bench, "commit", slot="A", version="0.1.0", sha256=OLD)  # the first install
        slots = await _slots(http)
        assert slots["A"] == {
            "version": "0.1.0", "active": True, "staged": False, "health": "OK", "floor": "0.1.0"
        }  # fmt: skip
        assert slots["B"]["version"] is None and slots["B"]["active"] is False

        await _link(bench, "tryboot", slot="B", version="0.2.0", sha256=NEW, deadlineSeconds=60)
        slots = await _slots(http)  # set for the next boot: A still runs
        assert slots["A"]["active"] and not slots["B"]["active"]
        assert slots["B"]["staged"] and slots["B"]["version"] == "0.2.0"
        assert slots["B"]["floor"] == "0.1.0"

        await _link(bench, "ab", consume=True)  # the boot that tries B takes the flag
        slots = await _slots(http)
        assert slots["B"]["active"] and not slots["A"]["active"]
        assert slots["B"]["health"] == "Warning" and not slots["B"]["staged"]

        await _link(bench, "commit", slot="B", version="0.2.0", sha256=NEW)
        slots = await _slots(http)
        assert slots["B"] == {
            "version": "0.2.0", "active": True, "staged": False, "health": "OK", "floor": "0.2.0"
        }  # fmt: skip
        # The slot it moved away from still holds the old version, and is not booted.
        assert slots["A"]["version"] == "0.1.0" and slots["A"]["active"] is False
        assert slots["A"]["floor"] == "0.2.0"
