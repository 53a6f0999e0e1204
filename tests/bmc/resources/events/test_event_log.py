"""The BMC's EventLog holds what a real BMC's log holds from its first second: its own start,
with a ``MessageId`` of the registry it publishes, again after each restart of the BMC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from racklet.net import client_context
from tests.bmc.conftest import eventually
from tests.bmc.twin_bench import ADMIN, READER, UNIT, TwinBmc, running_twin_bmc

MANAGER = "/redfish/v1/Managers/bmc"
ENTRIES = f"{MANAGER}/LogServices/EventLog/Entries"
STARTED = "Racklet.1.0.BmcStarted"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


def _client(twin: TwinBmc, who: tuple[str, str] = ADMIN) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=twin.url, verify=client_context(twin.ca), auth=who)


async def test_a_fresh_bmc_has_logged_its_own_start(twin: TwinBmc) -> None:
    async with _client(twin, READER) as http:
        log = (await http.get(ENTRIES)).json()
        first = log["Members"][0]
        assert first["MessageId"] == STARTED
        entry = (await http.get(first["@odata.id"])).json()
        manager = (await http.get(MANAGER)).json()
        registry_file = (await http.get("/redfish/v1/Registries/Racklet.1.0")).json()
        document = (await http.get(registry_file["Location"][0]["Uri"])).json()
        prefixes = (await http.get("/redfish/v1/EventService")).json()["RegistryPrefixes"]
    assert entry == first
    assert entry["EntryType"] == "Event" and entry["Severity"] == "OK" and entry["Created"]
    assert entry["MessageArgs"] == [UNIT, manager["FirmwareVersion"]]
    assert entry["Links"]["OriginOfCondition"] == {"@odata.id": MANAGER}
    # A log tool resolves the MessageId in the registry the BMC publishes.
    text = document["Messages"]["BmcStarted"]["Message"]
    assert text.replace("%1", UNIT).replace("%2", manager["FirmwareVersion"]) == entry["Message"]
    assert "Racklet" in prefixes


async def test_each_restart_of_the_bmc_is_logged(twin: TwinBmc) -> None:
    async with _client(twin) as http:
        reset = await http.post(
            f"{MANAGER}/Actions/Manager.Reset", json={"ResetType": "GracefulRestart"}
        )
        assert reset.status_code == 204, reset.text

        async def started_twice() -> bool:
            members = (await http.get(ENTRIES)).json()["Members"]
            return [m["MessageId"] for m in members].count(STARTED) == 2

        await eventually(started_twice, "a second BmcStarted entry after the reset")


async def test_every_racklet_message_in_the_log_resolves_in_the_published_registry(
    twin: TwinBmc,
) -> None:
    """A log tool reads ``MessageId``, finds the message in ``/redfish/v1/Registries`` and
    fills in ``MessageArgs``: for every Racklet entry that gives the entry's Message."""
    async with _client(twin) as http:
        reset = await http.post(
            f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        assert reset.status_code == 204, reset.text
        members = (await http.get(ENTRIES)).json()["Members"]
        registry_file = (await http.get("/redfish/v1/Registries/Racklet.1.0")).json()
        document = (await http.get(registry_file["Location"][0]["Uri"])).json()
    ours = [m for m in members if m["MessageId"].startswith("Racklet.")]
    assert {m["MessageId"] for m in ours} >= {STARTED, "Racklet.1.0.ResetRequested"}
    for entry in ours:
        text = document["Messages"][entry["MessageId"].rsplit(".", 1)[1]]["Message"]
        for index in range(len(entry["MessageArgs"]), 0, -1):
            text = text.replace(f"%{index}", entry["MessageArgs"][index - 1])
        assert text == entry["Message"], entry
