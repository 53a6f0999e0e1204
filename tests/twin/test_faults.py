"""The fault engine on a running twin rack: each kind applies, reverts exactly, and refuses
what it cannot do with a reason (bad parameters, missing or empty targets, overlaps)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from racklet.hw import Activity
from racklet.hw.drivers import ChipAbsent
from racklet.twin import FaultEngine, FaultRefused, TwinRack

from .conftest import eventually

MakeRack = Callable[..., TwinRack]


class FakeBmcHost:
    """Records what the engine asks of a BMC host (the real one is tested in e2e)."""

    def __init__(self) -> None:
        self.running = True
        self.restarts = 0

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def hang(self) -> None:
        self.running = False

    async def resume(self) -> None:
        self.running = True

    def request_restart(self) -> None:
        self.restarts += 1


async def _running(rack: TwinRack) -> None:
    await rack.start()
    for unit in rack.units.values():
        unit.power_on()
    await eventually(
        lambda: all(u.activity is Activity.RUNNING for u in rack.units.values()), "all running"
    )


async def test_busbar_outage_powers_every_unit_off_and_keeps_them_off_until_cleared(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=3)
    await _running(rack)
    engine = FaultEngine(rack)
    applied = await engine.inject("outage", "BusbarOutage", {}, [])
    assert applied.targets == []
    assert not any(unit.powered for unit in rack.units.values())
    rack.unit("unit-1").power_on()  # a BMC asking for power during the outage gets none
    assert not rack.unit("unit-1").powered
    assert await engine.clear("outage") is not None
    rack.unit("unit-1").power_on()
    assert rack.unit("unit-1").powered
    assert await engine.clear("outage") is None  # clearing twice is no error


async def test_a_busbar_outage_takes_the_bmcs_down_too(make_rack: MakeRack) -> None:
    rack = make_rack(units=2)
    hosts = {"unit-1": FakeBmcHost(), "unit-2": FakeBmcHost()}
    engine = FaultEngine(rack, hosts)
    await engine.inject("outage", "BusbarOutage", {}, [])
    assert not any(host.running for host in hosts.values())
    with pytest.raises(FaultRefused, match="BusbarOutage fault 'outage' on its BMC"):
        await engine.inject("h", "BmcHang", {}, ["unit-2"])
    await engine.clear("outage")
    assert all(host.running for host in hosts.values())


async def test_brown_out_lowers_the_rating_resets_units_and_is_restored(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=3, psu_rated_watts=100.0)
    await _running(rack)
    engine = FaultEngine(rack)
    idle = rack.profile.idle_watts
    with pytest.raises(FaultRefused, match="below one unit's idle draw"):
        await engine.inject("b0", "BrownOut", {"watts": idle / 2}, [])
    assert rack.busbar.rated_watts == 100.0
    await engine.inject("b1", "BrownOut", {"watts": idle * 1.5}, [])
    assert rack.busbar.rated_watts == idle * 1.5
    await eventually(lambda: rack.busbar.brownouts > 0, "the busbar to brown out")
    assert sum(unit.brownouts for unit in rack.units.values()) > 0
    await engine.clear("b1")
    assert rack.busbar.rated_watts == 100.0


async def test_power_loss_and_slot_pull_hit_only_their_targets_and_do_not_stack(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=3)
    await _running(rack)
    engine = FaultEngine(rack)
    await engine.inject("loss", "PowerLoss", {}, ["unit-2"])
    assert not rack.unit("unit-2").powered
    assert rack.unit("unit-1").powered and rack.unit("unit-3").powered
    with pytest.raises(FaultRefused, match="PowerLoss fault 'loss'"):
        await engine.inject("pull", "SlotPull", {}, ["unit-2"])
    await engine.clear("loss")
    await engine.inject("pull", "SlotPull", {}, ["unit-2"])
    assert not rack.unit("unit-2").present
    with pytest.raises(FaultRefused, match=r"slot 2 \(unit-2\) is empty"):
        await engine.inject("loss2", "PowerLoss", {}, ["unit-2"])
    with pytest.raises(FaultRefused, match="no unit 'unit-9'"):
        await engine.inject("x", "PowerLoss", {}, ["unit-9"])
    await engine.clear("pull")
    assert rack.unit("unit-2").present and not rack.unit("unit-2").powered
    assert rack.unit("unit-1").resets == 0 and rack.unit("unit-3").resets == 0


async def test_partitions_and_degradation_go_through_the_relay_switch(
    make_rack: MakeRack,
) -> None:
    rack = make_rack(units=2)
    await _running(rack)
    engine = FaultEngine(rack)
    await engine.inject("p", "Partition", {}, ["unit-1"])
    assert not rack.switch.port("unit-1").up and rack.switch.port("unit-2").up
    await engine.inject("b", "Partition", {"path": "bmc-management"}, ["unit-2"])
    assert not rack.switch.port("unit-2-bmc").up and rack.switch.port("unit-2").up
    with pytest.raises(FaultRefused, match="does not carry"):
        await engine.inject("p2", "Partition", {"path": "unit-unit"}, ["unit-2"])
    with pytest.raises(FaultRefused, match=r"loss in \[0, 1\)"):
        await engine.inject("lost", "LinkDegradation", {"loss": 1.0}, ["unit-2"])
    await engine.inject("d", "LinkDegradation", {"latencyMs": 50}, ["unit-2"])
    assert rack.switch.port("unit-2").properties.latency_ms == 50
    assert engine.capabilities()["LinkDegradation"] == ""
    for fault in ("p", "b", "d"):
        await engine.clear(fault)
    assert rack.switch.port("unit-1").up and rack.switch.port("unit-2-bmc").up
    assert rack.switch.port("unit-2").properties.latency_ms == 0


async def test_a_relay_switch_port_takes_link_and_properties(make_rack: MakeRack) -> None:
    calls: list[tuple[str, object]] = []

    class RelayPort:
        def set_link(self, up: bool) -> None:
            calls.append(("link", up))

        def set_properties(self, **properties: object) -> None:
            calls.append(("properties", properties))

        def reset(self) -> None:
            calls.append(("reset", None))

    rack = make_rack(units=1)
    rack.switch.port = lambda name: RelayPort()  # type: ignore[assignment, return-value]
    engine = FaultEngine(rack)
    assert engine.capabilities()["LinkDegradation"] == ""
    await engine.inject("d", "LinkDegradation", {"latencyMs": 40, "loss": 0.1}, ["unit-1"])
    await engine.inject("p", "Partition", {}, ["unit-1"])  # link and properties compose
    await engine.clear("p")
    await engine.clear("d")
    assert calls == [
        ("properties", {"latency_ms": 40.0, "jitter_ms": 0.0, "loss": 0.1, "bandwidth_bps": None}),
        ("link", False),
        ("link", True),
        ("reset", None),
    ]


async def test_bmc_hang_stops_the_listener_and_clear_starts_it(make_rack: MakeRack) -> None:
    rack = make_rack(units=2)
    hosts = {"unit-1": FakeBmcHost(), "unit-2": FakeBmcHost()}
    engine = FaultEngine(rack, hosts)
    await engine.inject("h", "BmcHang", {}, ["unit-1"])
    assert not hosts["unit-1"].running and hosts["unit-2"].running
    with pytest.raises(FaultRefused, match="BmcHang fault 'h'"):
        await engine.inject("r", "BmcReboot", {}, ["unit-1"])
    await engine.clear("h")
    assert hosts["unit-1"].running
    await engine.inject("r", "BmcReboot", {}, ["unit-2"])
    assert hosts["unit-2"].restarts == 1
    assert FaultEngine(rack).capabilities()["BmcHang"], "no hosts: says why it cannot"


async def test_sensor_faults_read_as_the_chip_would_report_them(make_rack: MakeRack) -> None:
    rack = make_rack(units=2)
    await _running(rack)
    engine = FaultEngine(rack)
    board = rack.board("unit-1")
    await engine.inject(
        "nan", "SensorFailure", {"sensor": "temperature", "mode": "nan"}, ["unit-1"]
    )
    assert math.isnan(board.temperature.read_celsius())
    assert not math.isnan(rack.board("unit-2").temperature.read_celsius())
    with pytest.raises(FaultRefused, match="temperature sensor"):
        await engine.inject("stuck", "SensorFailure", {"mode": "stuck"}, ["unit-1"])
    await engine.clear("nan")
    assert not math.isnan(board.temperature.read_celsius())

    await engine.inject(
        "gone", "SensorFailure", {"sensor": "temperature", "mode": "absent"}, ["unit-1"]
    )
    with pytest.raises(OSError):
        board.temperature.read_celsius()
    # Another sensor of the same unit composes.
    await engine.inject("pm", "SensorFailure", {"sensor": "power", "mode": "absent"}, ["unit-1"])
    with pytest.raises(ChipAbsent):
        board.power_monitor.read()
    await engine.clear("pm")
    await engine.clear("gone")
    assert board.power_monitor.read().watts > 0

    with pytest.raises(FaultRefused, match="cannot read NaN"):
        await engine.inject("x", "SensorFailure", {"sensor": "power", "mode": "nan"}, ["unit-1"])
    with pytest.raises(FaultRefused, match="mode"):
        await engine.inject("x", "SensorFailure", {"mode": "melted"}, ["unit-1"])


async def test_storage_corruption_flips_a_bit_in_the_active_slot_and_restores_it(
    make_rack: MakeRack, tmp_path: Path
) -> None:
    rack = make_rack(units=1)
    bmc_dir = tmp_path / "bmc-1"
    bmc_dir.mkdir()
    engine = FaultEngine(rack, bmc_dirs={"unit-1": bmc_dir})
    with pytest.raises(FaultRefused, match="no committed slot"):
        await engine.inject("c", "StorageCorruption", {}, ["unit-1"])
    (bmc_dir / "ab.json").write_text(json.dumps({"committed": {"slot": "B"}}))
    payload = rack.unit("unit-1").storage / "slots" / "B" / "payload.bin"
    payload.parent.mkdir(parents=True)
    payload.write_bytes(bytes(range(256)) * 4)
    await engine.inject("c", "StorageCorruption", {"seed": 7}, ["unit-1"])
    broken = payload.read_bytes()
    assert len(broken) == 1024
    assert sum(a != b for a, b in zip(broken, bytes(range(256)) * 4, strict=True)) == 1
    await engine.clear("c")
    assert payload.read_bytes() == bytes(range(256)) * 4
    await engine.inject("t", "StorageCorruption", {"mode": "truncate", "slot": "B"}, ["unit-1"])
    assert len(payload.read_bytes()) == 512


async def test_hot_swap_refuses_an_empty_pull_and_an_occupied_insert(make_rack: MakeRack) -> None:
    rack = make_rack(units=3)
    await _running(rack)
    engine = FaultEngine(rack)
    with pytest.raises(FaultRefused, match="slot 3 is occupied by unit-3"):
        engine.insert(3)
    engine.pull(3)
    assert not rack.unit("unit-3").present
    with pytest.raises(FaultRefused, match="slot 3 is already empty"):
        engine.pull(3)
    with pytest.raises(FaultRefused, match="no slot 7"):
        engine.pull(7)
    engine.insert(3)
    assert rack.unit("unit-3").present
    assert all(rack.unit(n).resets == 0 and rack.unit(n).powered for n in ("unit-1", "unit-2"))


async def test_unknown_kinds_and_reused_ids_are_refused(make_rack: MakeRack) -> None:
    rack = make_rack(units=1)
    engine = FaultEngine(rack)
    with pytest.raises(FaultRefused, match="unknown fault kind"):
        await engine.inject("x", "Meteor", {}, ["unit-1"])
    with pytest.raises(FaultRefused, match="ControllerCrash cannot be done here"):
        await engine.inject("x", "ControllerCrash", {}, [])
    await engine.inject("p", "Partition", {}, ["unit-1"])
    assert (await engine.inject("p", "Partition", {}, ["unit-1"])).id == "p"  # idempotent
    with pytest.raises(FaultRefused, match="already active with other parameters"):
        await engine.inject("p", "PowerLoss", {}, ["unit-1"])


async def test_a_new_board_wipes_the_bmc_state_and_the_disk_and_restarts_the_bmc(
    make_rack: MakeRack, tmp_path: Path
) -> None:
    from racklet.twin._control import new_board_wiper

    rack = make_rack(units=2)
    await rack.start()
    bmc_dir = tmp_path / "bmc-2"
    (bmc_dir / "certificates").mkdir(parents=True)
    for name in ("uuid", "ab.json", "accounts.json", "certificates/identity.key"):
        (bmc_dir / name).write_text("old")
    disk = rack.unit("unit-2").storage
    (disk / "slots" / "A").mkdir(parents=True)
    (disk / "slots" / "A" / "payload.bin").write_bytes(b"old os")
    host = FakeBmcHost()
    await new_board_wiper({"unit-2": bmc_dir}, {"unit-2": host})(rack.unit("unit-2"))
    assert sorted(p.name for p in bmc_dir.iterdir()) == ["accounts.json"]  # the rack's accounts
    assert disk.is_dir() and not any(disk.iterdir())
    assert host.running
