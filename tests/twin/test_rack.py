"""A running twin rack: power, firmware lifecycle, physics, link and console, hot-swap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from racklet.hw import Activity, BmcBoard
from racklet.hw.drivers import ChipAbsent
from racklet.link import LinkClient, serve_link
from racklet.twin import TwinRack

from .conftest import RecordingFirmware, eventually

MakeRack = Callable[..., TwinRack]


async def test_power_on_runs_firmware_after_rom_delay_and_off_cancels_it(
    make_rack: MakeRack, firmware: RecordingFirmware
) -> None:
    rack = make_rack(units=2)
    await rack.start()
    unit, board = rack.unit("unit-1"), rack.board("unit-1")
    assert unit.power_watts == 0.0 and unit.activity is None
    assert unit.agent_port == 9101 and unit.storage.is_dir()

    board.power_switch.set(True)
    assert board.power_switch.is_on()
    assert unit.activity is Activity.FIRMWARE
    assert unit.power_watts == unit.profile.boot_watts
    await eventually(lambda: unit.activity is Activity.RUNNING, "the firmware to run")
    assert firmware.starts["unit-1"] == 1
    assert unit.power_watts == pytest.approx(
        unit.idle_watts + 0.05 * (unit.full_load_watts - unit.idle_watts)
    )

    board.power_switch.set(False)
    assert unit.power_watts == 0.0
    await eventually(lambda: not unit.firmware_running, "the firmware task to finish")
    assert firmware.cancelled["unit-1"] == 1
    assert "unit-2" not in firmware.starts


async def test_reset_restarts_and_shutdown_request_halts(
    make_rack: MakeRack, firmware: RecordingFirmware
) -> None:
    rack = make_rack(units=1)
    await rack.start()
    unit, board = rack.unit("unit-1"), rack.board("unit-1")
    board.power_switch.set(True)
    await eventually(lambda: unit.activity is Activity.RUNNING, "first boot")

    board.reset.pulse()
    assert unit.activity is Activity.FIRMWARE
    await eventually(lambda: firmware.starts["unit-1"] == 2, "the firmware to restart")
    await eventually(lambda: unit.activity is Activity.RUNNING, "second boot")
    assert firmware.cancelled["unit-1"] == 1

    board.shutdown_request.pulse()
    await eventually(lambda: unit.activity is Activity.HALTED, "the OS to halt")
    assert unit.power_watts == unit.profile.halted_watts
    assert board.power_switch.is_on()
    assert not unit.firmware_running


async def test_full_load_heats_until_throttled_and_power_drops(make_rack: MakeRack) -> None:
    rack = make_rack(units=1)
    for fan in rack.rack_fans:  # no cooling at all: the rack's fans stopped, no board fan
        fan.set_duty_percent(0.0)
    await rack.start()
    unit = rack.unit("unit-1")
    unit.set_load(1.0)
    rack.board("unit-1").power_switch.set(True)
    await eventually(lambda: unit.activity is Activity.RUNNING, "boot")
    assert unit.power_watts == pytest.approx(unit.full_load_watts)
    await eventually(lambda: unit.temperature > 40.0, "the SoC to warm up")
    await eventually(lambda: unit.throttled, "thermal throttling at 80 °C")
    assert unit.temperature >= unit.profile.throttle_celsius
    assert unit.power_watts < unit.full_load_watts
    assert rack.board("unit-1").temperature.read_celsius() >= 77.0


async def test_overload_browns_out_and_resets_every_powered_unit(
    make_rack: MakeRack, firmware: RecordingFirmware
) -> None:
    # 5 × 6.4 W at full load is 32 W; throttled to their lowest clocks still 5 × 3.8 W
    rack = make_rack(units=5, psu_rated_watts=15.0)
    await rack.start()
    for name, unit in rack.units.items():
        unit.set_load(1.0)
        rack.board(name).power_switch.set(True)
    await eventually(lambda: rack.busbar.brownouts >= 1, "a brown-out")
    await eventually(
        lambda: all(firmware.starts.get(name, 0) >= 2 for name in rack.units),
        "every unit to boot again after the brown-out",
    )
    assert all(unit.brownouts >= 1 for unit in rack.units.values())
    assert rack.busbar.energy_joules > 0


async def test_an_unpowered_unit_ignores_a_brownout(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=2, psu_rated_watts=100.0)
    unit = rack.unit("unit-2")
    unit.brown_out()  # unpowered: nothing to reset
    assert unit.brownouts == 0 and not unit.firmware_running


async def test_energy_accumulates_in_simulated_time(make_rack: MakeRack) -> None:
    rack = make_rack(units=2)  # not started: the test drives the physics itself
    unit = rack.unit("unit-1")
    unit.power_on()
    unit.set_activity(Activity.RUNNING)
    unit.set_load(0.0)
    rack.step(10.0)
    assert unit.energy_joules == pytest.approx(10.0 * unit.idle_watts)
    assert rack.unit("unit-2").energy_joules == 0.0
    fans = sum(fan.power_watts for fan in rack.rack_fans)  # spinning up, undriven: full duty
    assert fans > 0.0
    assert rack.busbar.power_watts == pytest.approx(unit.idle_watts + fans)
    assert rack.busbar.energy_joules == pytest.approx(10.0 * (unit.idle_watts + fans))


async def test_board_power_monitor_reads_the_unit_through_the_pac1921(make_rack: MakeRack) -> None:
    rack = make_rack(units=1)
    unit, board = rack.unit("unit-1"), rack.board("unit-1")
    assert board.power_monitor.read().watts == 0.0
    unit.power_on()
    unit.set_activity(Activity.RUNNING)
    unit.set_load(0.0)
    readings = [board.power_monitor.read() for _ in range(400)]
    one_lsb = (0.1 / 0.01 / 2) * (32.0 / 4) / 1023  # gains chosen for a 15.3 W budget
    # Each reading is off by the chip's noise (about one code); their mean is the true draw.
    assert all(abs(r.watts - unit.idle_watts) <= 6 * one_lsb for r in readings)
    assert len({r.watts for r in readings}) > 2, "a real converter's readings jitter"
    mean = sum(r.watts for r in readings) / len(readings)
    assert mean == pytest.approx(unit.idle_watts, abs=one_lsb / 4)
    assert readings[0].volts == pytest.approx(5.1, abs=5 * 32.0 / 4 / 1023)
    assert board.max_power_watts == unit.profile.max_power_watts


async def test_pulled_unit_is_absent_and_its_monitor_nacks(make_rack: MakeRack) -> None:
    rack = make_rack(units=2)
    board = rack.board("unit-2")
    rack.unit("unit-2").power_on()
    rack.pull("unit-2")
    assert not board.presence.is_present()
    assert not board.power_switch.is_on()
    with pytest.raises(ChipAbsent):
        board.power_monitor.read()
    board.power_switch.set(True)  # nothing in the slot to power
    assert not board.power_switch.is_on()
    rack.insert("unit-2")
    assert board.presence.is_present()
    assert board.power_monitor.read().watts == 0.0


async def _serve_trust(board: BmcBoard) -> None:
    async def trust(request: dict[str, Any]) -> dict[str, Any]:
        return {"bootServer": f"https://127.0.0.1:1/{board.unit}"}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_link(reader, writer, {"trust": trust})

    await board.link.serve(handler)


async def test_link_round_trip_and_console(make_rack: MakeRack) -> None:
    rack = make_rack(units=1)
    await rack.start()
    board, unit = rack.board("unit-1"), rack.unit("unit-1")
    bmc = asyncio.create_task(_serve_trust(board))
    try:
        await eventually(lambda: unit.backplane._handler is not None, "the BMC to serve")
        client = LinkClient(*await unit.link.connect())
        answer = await client.request("trust")
        assert answer["bootServer"] == "https://127.0.0.1:1/unit-1"
        await client.close()

        unit.power_on()
        await eventually(lambda: unit.activity is Activity.RUNNING, "boot")
        assert await asyncio.wait_for(board.uart.read(), 5) == b"unit-1 booting\r\n"
    finally:
        bmc.cancel()
        await asyncio.gather(bmc, return_exceptions=True)


async def test_connect_without_a_bmc_is_refused(make_rack: MakeRack) -> None:
    rack = make_rack(units=1)
    with pytest.raises(ConnectionRefusedError):
        await rack.unit("unit-1").link.connect()


async def test_stop_cancels_every_task(make_rack: MakeRack, firmware: RecordingFirmware) -> None:
    rack = make_rack(units=3)
    await rack.start()
    for name in rack.units:
        rack.board(name).power_switch.set(True)
    await eventually(lambda: len(firmware.starts) == 3, "all units to boot")
    await rack.stop()
    assert not any(unit.firmware_running for unit in rack.units.values())
    assert sum(firmware.cancelled.values()) == 3
    assert rack._physics is None
