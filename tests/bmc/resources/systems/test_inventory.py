"""What a unit is made of, read the way operators read it: sushy's System and Chassis (the
board's identity: make, model, serial, UUID, processor and memory summaries, the seeded MAC)
and the old ``Power``/``Thermal`` resources from the same sample as the new subsystems."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sushy

from tests.bmc.twin_bench import READER, UNIT, TwinBmc, running_twin_bmc


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


def _read(twin: TwinBmc) -> dict[str, Any]:
    auth = sushy.auth.SessionOrBasicAuth(username=READER[0], password=READER[1])
    root = sushy.Sushy(twin.url + "/redfish/v1", auth=auth, verify=str(twin.ca))
    try:
        system = root.get_system(f"/redfish/v1/Systems/{UNIT}")
        chassis = root.get_chassis(f"/redfish/v1/Chassis/{UNIT}")
        return {
            "system": (system.manufacturer, system.model, system.serial_number, system.uuid),
            "bios": system.bios_version,  # a Pi's EEPROM bootloader release
            "cpus": system.processors.summary,
            "memory": system.memory_summary.size_gib,
            "nics": system.ethernet_interfaces.summary,
            "chassis": (chassis.manufacturer, chassis.model, chassis.serial_number),
            "supply": chassis.power.power_supplies[0].power_capacity_watts,
            "control": chassis.power.json["PowerControl"][0]["PowerCapacityWatts"],
            "consumed": chassis.power.json["PowerControl"][0]["PowerConsumedWatts"],
            "metrics": chassis.power.json["PowerControl"][0]["PowerMetrics"],
            "celsius": chassis.thermal.temperatures[0].reading_celsius,
            "caution": chassis.thermal.temperatures[0].upper_threshold_non_critical,
            "fans": [fan.reading for fan in chassis.thermal.fans],
            # What OCP's rack-manager profile reads of a unit through the RMC.
            "temperature": chassis.thermal.temperatures[0].name,
            "thermal": chassis.thermal.json["Status"]["State"],
            "hot_pluggable": {fan["HotPluggable"] for fan in chassis.thermal.json["Fans"]},
            "redundancy": chassis.power.json["Redundancy"],
            "managers_in": chassis.json["Links"]["ManagersInChassis"],
            "part": (system.json.get("PartNumber"), chassis.part_number),
            "sensor_number": chassis.power.json["Voltages"][0].get("SensorNumber"),
            "boot_mode": system.boot.mode,  # sushy's reading of BootSourceOverrideMode
            "boot_modes": system.json["Boot"].get("BootSourceOverrideMode@Redfish.AllowableValues"),
        }
    finally:
        auth.close()


async def test_sushy_reads_the_board_identity_and_the_old_power_and_thermal(
    twin: TwinBmc,
) -> None:
    board = twin.rack.board(UNIT)
    identity = board.identity
    assert identity is not None
    read = await asyncio.to_thread(_read, twin)
    make = (identity.manufacturer, identity.model, identity.serial_number)
    assert read["system"][:3] == make and read["chassis"] == make
    assert read["system"][3] and read["system"][3] != twin.service.context.uuid  # the unit's
    assert identity.bootloader_version and read["bios"] == identity.bootloader_version
    # sushy (as Ironic) counts logical CPUs
    assert (
        read["cpus"].count == identity.processor_cores
        and read["cpus"].architecture == sushy.PROCESSOR_ARCH_ARM
    )
    assert read["memory"] == identity.memory_mib / 1024
    assert list(read["nics"]) == [identity.unit_mac]
    assert read["control"] == board.max_power_watts
    # The last minute of the monitor's samples, the latest among them.
    metrics = read["metrics"]
    assert metrics["IntervalInMin"] == 1
    assert metrics["MinConsumedWatts"] <= metrics["AverageConsumedWatts"]
    assert metrics["AverageConsumedWatts"] <= metrics["MaxConsumedWatts"]
    assert metrics["MinConsumedWatts"] <= read["consumed"] <= metrics["MaxConsumedWatts"]
    assert read["supply"] == int(board.max_power_watts)  # sushy reads it as an integer
    assert read["caution"] == twin.service.context.meter.temperature_caution
    assert read["celsius"] is None or read["celsius"] > 0
    assert len(read["fans"]) == len(board.fans)
    assert read["temperature"] == "CPU1 Temp"  # the name IPMI-era tools and OCP look for
    assert (read["thermal"], read["hot_pluggable"], read["redundancy"]) == ("Enabled", {False}, [])
    assert read["managers_in"] == [{"@odata.id": "/redfish/v1/Managers/bmc"}]
    # Raspberry Pi Ltd's order code of the board (SC0194: the 4 GB Pi 4 Model B).
    assert identity.part_number == "SC0194" and read["part"] == ("SC0194", "SC0194")
    # The voltage is named by its power monitor's SMBus address (the PAC1921 at 0x4C).
    assert read["sensor_number"] == board.power_monitor.address == 0x4C  # type: ignore[attr-defined]
    # A Pi's EEPROM bootloader boots in non-UEFI mode, the schema's "Legacy".
    assert (read["boot_mode"], read["boot_modes"]) == (sushy.BOOT_SOURCE_MODE_BIOS, ["Legacy"])


async def test_two_units_differ_and_a_rack_built_again_is_the_same(tmp_path: Path) -> None:
    async with running_twin_bmc(tmp_path / "a") as first:
        one, two = first.rack.board(UNIT).identity, first.rack.board("unit-2").identity
    async with running_twin_bmc(tmp_path / "b") as second:
        again = second.rack.board(UNIT).identity
    assert one is not None and two is not None
    assert one.serial_number != two.serial_number and one.unit_mac != two.unit_mac
    assert again == one  # seeded: the same rack description builds the same boards
    assert int(one.unit_mac.split(":")[0], 16) & 0x02  # locally administered
