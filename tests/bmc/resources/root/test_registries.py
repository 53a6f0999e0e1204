"""Console lines carry a ``MessageId`` a client can resolve: DMTF's ``redfish`` library
follows ``/redfish/v1/Registries`` to the Racklet registry and finds the message there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import redfish
from tests.bmc.twin_bench import OPERATOR, UNIT, TwinBmc, running_twin_bmc

SYSTEM = f"/redfish/v1/Systems/{UNIT}"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


async def test_console_entries_name_a_message_of_the_published_registry(twin: TwinBmc) -> None:
    def talk() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        client = redfish.redfish_client(
            base_url=twin.url, username=OPERATOR[0], password=OPERATOR[1], cafile=str(twin.ca)
        )
        client.login(auth="session")
        try:
            client.post(f"{SYSTEM}/Actions/ComputerSystem.Reset", body={"ResetType": "On"})
            entries: list[dict[str, Any]] = []
            for _ in range(400):  # the idle OS prints a line once it is up
                entries = client.get(f"{SYSTEM}/LogServices/Console/Entries").dict["Members"]
                if entries:
                    break
            root = client.get("/redfish/v1/").dict
            files = client.get(root["Registries"]["@odata.id"]).dict["Members"]
            found = client.get(files[0]["@odata.id"]).dict
            document = client.get(found["Location"][0]["Uri"]).dict
            return entries, found, document
        finally:
            client.logout()

    entries, found, document = await asyncio.to_thread(talk)
    assert entries, "the unit printed nothing"
    line = entries[0]
    registry, _, key = line["MessageId"].rpartition(".")
    assert registry == found["Registry"] == "Racklet.1.0"
    assert document["RegistryPrefix"] == "Racklet"
    message = document["Messages"][key]
    assert message["Message"].replace("%1", line["MessageArgs"][0]) == line["Message"]
