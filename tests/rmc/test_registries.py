"""Every message registry a service publishes is one a subscriber may filter on, and a log tool
reading the rack through the RMC resolves the BMCs' own (``Racklet``) MessageIds there."""

from __future__ import annotations

import httpx

from tests.rmc.conftest import READER, Rack

EVENT_SERVICE = "/redfish/v1/EventService"


async def _published(http: httpx.AsyncClient) -> dict[str, dict[str, object]]:
    """Each registry file under /redfish/v1/Registries, by its registry's prefix."""
    files = {}
    for member in (await http.get("/redfish/v1/Registries")).json()["Members"]:
        body = (await http.get(member["@odata.id"])).json()
        files[str(body["Registry"]).split(".", 1)[0]] = body
    return files


async def test_every_registry_the_rmc_publishes_may_be_subscribed_to(rack: Rack) -> None:
    async with rack.client(READER) as http:
        published = await _published(http)
        prefixes = (await http.get(EVENT_SERVICE)).json()["RegistryPrefixes"]
    assert "Racklet" in published
    # Base holds the error replies' messages only: no event carries one.
    assert set(published) - {"Base"} == set(prefixes)


async def test_every_registry_a_bmc_publishes_may_be_subscribed_to(rack: Rack) -> None:
    async with rack.bmc("unit-1") as http:
        published = await _published(http)
        prefixes = (await http.get(EVENT_SERVICE)).json()["RegistryPrefixes"]
    assert set(published) == {"Racklet"}
    assert set(published) <= set(prefixes)


async def test_a_bmcs_log_entry_resolves_in_the_registry_the_rmc_publishes(rack: Rack) -> None:
    """The BmcStarted entry of unit-1's EventLog, read through the RMC, names a message of
    the Racklet registry that the RMC itself serves."""
    async with rack.client(READER) as http:
        log = "/redfish/v1/Managers/unit-1_bmc/LogServices/EventLog/Entries"
        entry = (await http.get(log)).json()["Members"][0]
        racklet = (await _published(http))["Racklet"]
        location = racklet["Location"]
        assert isinstance(location, list)
        document = (await http.get(location[0]["Uri"])).json()
    registry, _, name = entry["MessageId"].rpartition(".")
    prefix, _, version = registry.partition(".")
    assert prefix == "Racklet" and document["RegistryPrefix"] == prefix
    assert document["RegistryVersion"].startswith(version)
    text = document["Messages"][name]["Message"]
    for index in range(len(entry["MessageArgs"]), 0, -1):
        text = text.replace(f"%{index}", entry["MessageArgs"][index - 1])
    assert text == entry["Message"]
