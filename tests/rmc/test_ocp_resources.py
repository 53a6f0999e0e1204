"""What OCP's rack-manager profile asks of the RMC, read and used the way tools do:
the rack chassis with its units, Power and Thermal, AssetTag and Reset; the RMC's manager;
``$metadata``."""

from __future__ import annotations

import asyncio

import redfish
from racklet.rmc._service import UNIT_POLL_SECONDS
from tests.rmc.conftest import ADMIN, READER, UNITS, Rack, eventually

RACK = "/redfish/v1/Chassis/rack"
MANAGER = "/redfish/v1/Managers/rmc"


async def test_the_rack_contains_every_units_chassis_and_system(rack: Rack) -> None:
    async with rack.client(READER) as client:
        chassis = (await client.get(RACK)).json()
        unit = (await client.get("/redfish/v1/Chassis/unit-1_unit-1")).json()
    links = chassis["Links"]
    assert links["Contains"] == [{"@odata.id": f"/redfish/v1/Chassis/{u}_{u}"} for u in UNITS]
    assert links["ComputerSystems"] == [
        {"@odata.id": f"/redfish/v1/Systems/{u}_{u}"} for u in UNITS
    ]
    assert links["ManagedBy"] == [{"@odata.id": MANAGER}]
    # ...and each unit's chassis, as the RMC shows it, says it is in the rack.
    assert unit["Links"]["ContainedBy"] == {"@odata.id": RACK}
    assert (chassis["SerialNumber"], chassis["PartNumber"]) == ("TWIN-rack-1", "RKL-RACK-TWIN")


async def _power_on(rack: Rack, unit: str) -> None:
    async with rack.bmc(unit) as bmc:
        answer = await bmc.post(
            f"/redfish/v1/Systems/{unit}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
    assert answer.status_code == 204
    await eventually(lambda: rack.rack.unit(unit).power_watts > 2.0, f"{unit} to draw power")


async def test_power_and_thermal_are_the_busbar_psu_and_fans_in_the_older_schema(
    rack: Rack,
) -> None:
    await eventually(lambda: rack.twin_fans_turning(), "the rack fans to turn")
    await _power_on(rack, "unit-1")
    monitor = rack.rmc.monitor
    assert monitor is not None
    await eventually(lambda: (monitor.busbar.watts or 0) > 2.0, "the busbar to see unit-1")
    async with rack.client(READER) as client:
        environment = (await client.get(f"{RACK}/EnvironmentMetrics")).json()
        power = (await client.get(f"{RACK}/Power")).json()
        thermal = (await client.get(f"{RACK}/Thermal")).json()
    control = power["PowerControl"][0]
    assert control["PowerLimit"]["LimitInWatts"] == environment["PowerLimitWatts"]["SetPoint"]
    assert power["PowerSupplies"][0]["PowerCapacityWatts"] == 100.0
    watts = control["PowerConsumedWatts"]
    assert watts is not None and watts > 2.0
    metrics = control["PowerMetrics"]
    assert metrics["MinConsumedWatts"] <= metrics["AverageConsumedWatts"]
    assert metrics["AverageConsumedWatts"] <= metrics["MaxConsumedWatts"]
    assert power["Voltages"][0]["ReadingVolts"] > 4.5
    assert [f["Name"] for f in thermal["Fans"]] == list(rack.rmc.monitor.fans)  # type: ignore[union-attr]
    assert all(f["Reading"] > 0 and f["ReadingUnits"] == "RPM" for f in thermal["Fans"])
    assert [t["Name"] for t in thermal["Temperatures"]] == [
        f"slot-{n} CPU temp" for n in range(1, len(UNITS) + 1)
    ]


async def test_asset_tag_is_writable_checked_and_kept_in_the_state_dir(rack: Rack) -> None:
    async with rack.client() as client:
        tagged = await client.patch(RACK, json={"AssetTag": "lab-rack-7"})
        too_long = await client.patch(RACK, json={"AssetTag": "x" * 65})
        wrong = await client.patch(RACK, json={"SerialNumber": "forged"})
    async with rack.client(READER) as reader:
        refused = await reader.patch(RACK, json={"AssetTag": "mine"})
        shown = (await reader.get(RACK)).json()["AssetTag"]
    assert tagged.status_code == 200 and tagged.json()["AssetTag"] == "lab-rack-7"
    assert too_long.status_code == 400 and wrong.status_code == 400
    assert refused.status_code == 403 and shown == "lab-rack-7"
    resources = rack.rmc.rack
    assert resources is not None
    saved = rack.rmc.settings.accounts_file.parent / "chassis.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    resources.asset_tag = ""
    await asyncio.to_thread(resources.load)  # what a restarted RMC does first
    assert resources.asset_tag == "lab-rack-7"


async def test_a_rack_reset_powers_every_unit_in_slot_order(rack: Rack) -> None:
    units = [rack.rack.unit(name) for name in UNITS]

    def reset(reset_type: str) -> int:
        """DMTF's redfish library, as a script would use it."""
        context = redfish.redfish_client(
            base_url=rack.url, username=ADMIN[0], password=ADMIN[1], cafile=str(rack.ca)
        )
        context.login(auth="session")
        try:
            chassis = context.get(RACK).dict
            target = chassis["Actions"]["#Chassis.Reset"]["target"]
            return int(context.post(target, body={"ResetType": reset_type}).status)
        finally:
            context.logout()

    assert await asyncio.to_thread(reset, "On") == 204
    await eventually(lambda: all(u.power_watts > 2.0 for u in units), "every unit on")
    assert await asyncio.to_thread(reset, "ForceOff") == 204
    await eventually(lambda: all(u.power_watts == 0.0 for u in units), "every unit off")
    async with rack.client() as client:
        bad = await client.post(f"{RACK}/Actions/Chassis.Reset", json={"ResetType": "Nmi"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"].endswith("ActionParameterValueNotInList")


async def test_the_rmc_manager_says_where_it_listens_and_what_it_serves(rack: Rack) -> None:
    async with rack.client(READER) as client:
        manager = (await client.get(MANAGER)).json()
        protocol = (await client.get(f"{MANAGER}/NetworkProtocol")).json()
        certificate = (await client.get(f"{MANAGER}/NetworkProtocol/HTTPS/Certificates/1")).json()
        interface = (await client.get(f"{MANAGER}/EthernetInterfaces/eth0")).json()
    assert manager["ManagerType"] == "RackManager"
    assert manager["Links"]["ManagerForChassis"] == [{"@odata.id": RACK}]
    assert protocol["HTTPS"] == {
        "ProtocolEnabled": True,
        "Port": int(rack.url.rsplit(":", 1)[1]),
        "Certificates": {"@odata.id": f"{MANAGER}/NetworkProtocol/HTTPS/Certificates"},
    }
    assert protocol["HTTP"]["ProtocolEnabled"] is False
    served = (tmp := rack.ca.parent.parent / "rmc" / "server.crt").read_text()
    assert certificate["CertificateString"] == served, tmp
    assert interface["IPv4Addresses"][0]["Address"] == "127.0.0.1"


async def test_a_manager_reset_restarts_the_rmc_loops_and_keeps_the_energy(rack: Rack) -> None:
    monitor = rack.rmc.monitor
    assert monitor is not None
    await _power_on(rack, "unit-1")
    await eventually(lambda: monitor.energy_joules > 0, "some rack energy")
    async with rack.client(READER) as reader:
        refused = await reader.post(f"{MANAGER}/Actions/Manager.Reset", json={})
    assert refused.status_code == 403
    before = monitor.energy_joules
    async with rack.client() as client:
        answer = await client.post(
            f"{MANAGER}/Actions/Manager.Reset", json={"ResetType": "GracefulRestart"}
        )
        bad = await client.post(f"{MANAGER}/Actions/Manager.Reset", json={"ResetType": "Nmi"})
    assert answer.status_code == 204 and bad.status_code == 400
    assert monitor.energy_joules >= before, "the rack's energy never goes back"
    await asyncio.sleep(UNIT_POLL_SECONDS)
    await eventually(lambda: rack.twin_fans_turning(), "the fans still driven")


async def test_metadata_is_open_and_names_every_type_served(rack: Rack) -> None:
    async with rack.client(auth=None) as client:
        answer = await client.get("/redfish/v1/$metadata")
        odata = (await client.get("/redfish/v1/odata")).json()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    assert odata["@odata.context"] == "/redfish/v1/$metadata"
    for name in ("ServiceRoot", "Chassis", "Power", "Thermal", "EventService", "UpdateService"):
        assert f'Namespace="{name}"' in answer.text
