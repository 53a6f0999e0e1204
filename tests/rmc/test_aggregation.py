"""The RMC in front of real BMC services on twin boards, driven over HTTPS."""

from __future__ import annotations

import asyncio

import pytest
import sushy

from tests.rmc.conftest import ADMIN, OPERATOR, READER, UNITS, Rack, eventually

SYSTEMS = "/redfish/v1/Systems"


async def test_service_root_names_the_aggregation_service_and_is_open(rack: Rack) -> None:
    async with rack.client(auth=None) as client:
        root = (await client.get("/redfish/v1")).json()
        assert root["AggregationService"] == {"@odata.id": "/redfish/v1/AggregationService"}
        assert root["Links"]["Sessions"]["@odata.id"] == "/redfish/v1/SessionService/Sessions"
        denied = await client.get(SYSTEMS)
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "Base.1.22.NoValidSession"


async def test_collections_merge_every_bmc_under_its_prefix(rack: Rack) -> None:
    async with rack.client() as client:
        systems = (await client.get(SYSTEMS)).json()
        chassis = (await client.get("/redfish/v1/Chassis")).json()
        managers = (await client.get("/redfish/v1/Managers")).json()
    # What each BMC itself lists, prefixed with its name.
    # The RMC's own manager comes first (its EventLog of logins); then every BMC's. So does
    # its own chassis, the rack enclosure (fans, busbar, display).
    expected: dict[str, list[str]] = {
        "Systems": [],
        "Chassis": ["/redfish/v1/Chassis/rack"],
        "Managers": ["/redfish/v1/Managers/rmc"],
    }
    for unit in rack.bmc_urls:
        async with rack.bmc(unit) as bmc:
            for name, members in expected.items():
                for m in (await bmc.get(f"/redfish/v1/{name}")).json()["Members"]:
                    local_id = m["@odata.id"].rsplit("/", 1)[1]
                    members.append(f"/redfish/v1/{name}/{unit}_{local_id}")
    for body, name in ((systems, "Systems"), (chassis, "Chassis"), (managers, "Managers")):
        got = [m["@odata.id"] for m in body["Members"]]
        assert got == expected[name]
        assert body["Members@odata.count"] == len(got)
    assert "/redfish/v1/Systems/unit-2_unit-2" in [m["@odata.id"] for m in systems["Members"]]


async def test_a_prefixed_member_is_the_bmcs_own_with_rewritten_uris(rack: Rack) -> None:
    async with rack.client() as client:
        answer = await client.get(f"{SYSTEMS}/unit-1_unit-1")
    async with rack.bmc("unit-1") as bmc:
        direct = await bmc.get(f"{SYSTEMS}/unit-1")
    body, original = answer.json(), direct.json()
    assert answer.status_code == 200
    assert answer.headers["etag"] == direct.headers["etag"]
    assert body["@odata.id"] == f"{SYSTEMS}/unit-1_unit-1"
    assert body["Id"] == "unit-1_unit-1"
    assert body["PowerState"] == original["PowerState"]
    assert body["Links"]["Chassis"] == [{"@odata.id": "/redfish/v1/Chassis/unit-1_unit-1"}]
    manager = original["Links"]["ManagedBy"][0]["@odata.id"].rsplit("/", 1)[1]
    assert body["Links"]["ManagedBy"] == [{"@odata.id": f"/redfish/v1/Managers/unit-1_{manager}"}]
    reset = body["Actions"]["#ComputerSystem.Reset"]["target"]
    assert reset == f"{SYSTEMS}/unit-1_unit-1/Actions/ComputerSystem.Reset"
    # Deeper resources are reachable through the links the RMC hands out.
    async with rack.client() as client:
        logs = await client.get(body["LogServices"]["@odata.id"])
    assert logs.status_code == 200
    assert logs.json()["@odata.id"] == f"{SYSTEMS}/unit-1_unit-1/LogServices"


async def test_aggregation_sources_describe_each_bmc(rack: Rack) -> None:
    async with rack.client() as client:
        service = (await client.get("/redfish/v1/AggregationService")).json()
        sources = (await client.get(service["AggregationSources"]["@odata.id"])).json()
        assert [m["@odata.id"] for m in sources["Members"]] == [
            f"/redfish/v1/AggregationService/AggregationSources/{unit}" for unit in rack.bmc_urls
        ]
        source = (await client.get(sources["Members"][1]["@odata.id"])).json()
    assert source["HostName"] == rack.bmc_urls["unit-2"]
    assert "UserName" not in source and "Password" not in source, "no BMC password at all"
    accessed = [link["@odata.id"] for link in source["Links"]["ResourcesAccessed"]]
    assert f"{SYSTEMS}/unit-2_unit-2" in accessed
    assert all("/unit-2_" in uri for uri in accessed)


async def test_unknown_members_are_redfish_404s(rack: Rack) -> None:
    async with rack.client() as client:
        unknown_bmc = await client.get(f"{SYSTEMS}/unit-9_unit-9")
        unknown_member = await client.get(f"{SYSTEMS}/unit-1_nope")
        unprefixed = await client.get(f"{SYSTEMS}/unit-1")
        traversal = await client.get(f"{SYSTEMS}/unit-1_unit-1/..%2F..%2FSessionService")
    for answer in (unknown_bmc, unknown_member, unprefixed, traversal):
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"].endswith("ResourceNotFound")


async def test_sushy_through_the_rmc_powers_one_unit_on_and_off(rack: Rack) -> None:
    unit = rack.rack.unit("unit-2")

    def connect() -> sushy.Sushy:
        return sushy.Sushy(
            rack.url + "/redfish/v1", username=ADMIN[0], password=ADMIN[1], verify=str(rack.ca)
        )

    root = await asyncio.to_thread(connect)
    members = await asyncio.to_thread(lambda: root.get_system_collection().members_identities)
    assert f"{SYSTEMS}/unit-2_unit-2" in members
    system = await asyncio.to_thread(root.get_system, f"{SYSTEMS}/unit-2_unit-2")
    assert system.power_state == sushy.POWER_STATE_OFF

    await asyncio.to_thread(system.reset_system, sushy.RESET_ON)
    await eventually(lambda: unit.power_watts > 2.0, "unit-2 to draw power")
    await asyncio.to_thread(system.refresh)
    assert system.power_state == sushy.POWER_STATE_ON
    assert rack.rack.unit("unit-1").power_watts == 0.0, "only the addressed unit moved"

    await asyncio.to_thread(system.reset_system, sushy.RESET_FORCE_OFF)
    await eventually(lambda: unit.power_watts == 0.0, "unit-2 to go dark")
    await asyncio.to_thread(system.refresh)
    assert system.power_state == sushy.POWER_STATE_OFF
    # sushy logs out in __del__; do it now, while the RMC still listens, not in a later GC.
    await asyncio.to_thread(root.__del__)


async def test_aggregation_service_reset_reaches_every_target(rack: Rack) -> None:
    targets = [{"@odata.id": f"{SYSTEMS}/{u}_{u}"} for u in rack.bmc_urls]
    async with rack.client(OPERATOR) as client:
        answer = await client.post(
            "/redfish/v1/AggregationService/Actions/AggregationService.Reset",
            json={"ResetType": "On", "TargetURIs": targets},
        )
    assert answer.status_code == 204, answer.text
    units = [rack.rack.unit(unit) for unit in rack.bmc_urls]
    await eventually(lambda: all(u.power_watts > 2.0 for u in units), "every unit to draw power")


async def test_read_only_callers_cannot_act_through_the_rmc(rack: Rack) -> None:
    async with rack.client(READER) as client:
        readable = await client.get(f"{SYSTEMS}/unit-1_unit-1")
        reset = await client.post(
            f"{SYSTEMS}/unit-1_unit-1/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        patched = await client.patch(
            f"{SYSTEMS}/unit-1_unit-1", json={"Boot": {"BootSourceOverrideTarget": "Usb"}}
        )
    assert readable.status_code == 200
    assert reset.status_code == 403
    assert patched.status_code == 403
    assert reset.json()["error"]["code"].endswith("InsufficientPrivilege")
    async with rack.bmc("unit-1") as bmc:
        system = (await bmc.get(f"{SYSTEMS}/unit-1")).json()
    assert system["PowerState"] == "Off"
    assert system["Boot"]["BootSourceOverrideTarget"] == "None"


async def test_patch_with_if_match_goes_through_with_the_bmcs_etag(rack: Rack) -> None:
    path = f"{SYSTEMS}/unit-1_unit-1"
    change = {
        "Boot": {"BootSourceOverrideTarget": "Usb", "BootSourceOverrideEnabled": "Continuous"}
    }
    async with rack.client() as client:
        etag = (await client.get(path)).headers["etag"]
        stale = await client.patch(path, json=change, headers={"If-Match": 'W/"stale"'})
        applied = await client.patch(path, json=change, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert applied.status_code in (200, 204), applied.text
    async with rack.bmc("unit-1") as bmc:
        system = (await bmc.get(f"{SYSTEMS}/unit-1")).json()
    assert system["Boot"]["BootSourceOverrideTarget"] == "Usb"


async def test_bad_bodies_get_redfish_errors_and_change_nothing(rack: Rack) -> None:
    action = f"{SYSTEMS}/unit-1_unit-1/Actions/ComputerSystem.Reset"
    async with rack.client() as client:
        malformed = await client.post(
            action, content=b"{not json", headers={"Content-Type": "application/json"}
        )
        oversized = await client.post(
            action,
            content=b"{" + b" " * 100_000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        bad_value = await client.post(action, json={"ResetType": "Explode"})
        login = await client.post("/redfish/v1/SessionService/Sessions", content=b"[]")
    assert malformed.status_code == 400
    assert oversized.status_code == 413
    assert bad_value.status_code == 400, "the BMC's own validation error comes through"
    assert login.status_code == 400
    for answer in (malformed, oversized, bad_value, login):
        assert "error" in answer.json()
    assert rack.rack.unit("unit-1").power_watts == 0.0


async def test_a_bmc_that_is_down_is_left_out_and_reported(rack: Rack) -> None:
    # Steady state first: a connection still in its TLS handshake when a server stops is not
    # among those uvicorn closes, and would go on answering (the RMC's relays connect at start).
    await eventually(lambda: rack.rmc.fan_in.connected == set(UNITS), "the RMC's event relays")
    await rack.bmc_servers["unit-1"].stop()
    async with rack.client() as client:
        systems = (await client.get(SYSTEMS)).json()
        gone = await client.get(f"{SYSTEMS}/unit-1_unit-1")
    assert [m["@odata.id"] for m in systems["Members"]] == [f"{SYSTEMS}/unit-2_unit-2"]
    assert gone.status_code == 502
    assert gone.json()["error"]["code"].endswith("ServiceTemporarilyUnavailable")


@pytest.mark.parametrize("who", [ADMIN, READER])
async def test_sessions_log_in_and_out(rack: Rack, who: tuple[str, str]) -> None:
    async with rack.client(auth=None) as client:
        login = await client.post(
            "/redfish/v1/SessionService/Sessions", json={"UserName": who[0], "Password": who[1]}
        )
        assert login.status_code == 201
        token = {"X-Auth-Token": login.headers["X-Auth-Token"]}
        assert (await client.get(SYSTEMS, headers=token)).status_code == 200
        assert (await client.delete(login.headers["Location"], headers=token)).status_code == 204
        assert (await client.get(SYSTEMS, headers=token)).status_code == 401
        wrong = await client.post(
            "/redfish/v1/SessionService/Sessions", json={"UserName": who[0], "Password": "x"}
        )
        assert wrong.status_code == 401
