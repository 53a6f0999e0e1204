"""The switch: carrier follows power and the port's admin state; no carrier, no network."""

from __future__ import annotations

import asyncio
from pathlib import Path

from racklet.hw import Activity, UnitHost
from racklet.twin import RackDescription, SimClock, TwinRack


async def _idle(host: UnitHost) -> None:
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


async def test_carrier_follows_power_and_port_state(tmp_path: Path) -> None:
    rack = TwinRack(RackDescription(units=2), SimClock(speed=50), _idle, storage_root=tmp_path)
    unit = rack.unit("unit-1")
    assert not unit.link_up(), "an unpowered unit has no link"
    unit.power_on()
    assert unit.link_up()
    rack.switch.set_enabled(1, False)  # a partition
    assert not unit.link_up()
    assert rack.unit("unit-2").port is rack.switch.ports[2]
    rack.switch.set_enabled(1, True)
    assert unit.link_up()
    unit.power_off()
    assert not unit.link_up()
    assert rack.switch.ports[1].link_changes == 4
    await rack.stop()


def test_routes_follow_the_config_a_unit_to_every_controller_and_each_bmc(tmp_path: Path) -> None:
    from racklet.cli._prepare import prepare
    from racklet.twin._switch import TOWARD_HARDWARE, TOWARD_MANAGEMENT, TwinSwitch

    config = prepare(
        tmp_path / "rack",
        units=2,
        speed=1.0,
        profile="raspberry-pi-4",
        psu_rated_watts=100.0,
        payload_bytes=4096,
        store="etcd://127.0.0.1:2379",
        controllers=2,
    )
    switch = TwinSwitch(2)
    routes = {route.name: route for route in switch.routes(config)}
    unit = config.unit("unit-2")
    peer = config.peer_controllers[0]
    to_peer = routes["unit-2>machine:controller-2"]
    assert (to_peer.listen, to_peer.target) == (
        unit.switch_ports["machine:controller-2"],
        peer.machine_port,
    )
    assert [(link.name, way) for link, way in to_peer.hops] == [
        ("unit-2", TOWARD_MANAGEMENT),
        ("uplink", TOWARD_MANAGEMENT),
    ]
    bmc = routes["unit-2-bmc"]
    assert bmc.target == unit.bmc_port and f":{bmc.listen}" in unit.bmc.url
    assert [(link.name, way) for link, way in bmc.hops] == [
        ("uplink", TOWARD_HARDWARE),
        ("unit-2-bmc", TOWARD_HARDWARE),
    ]
    assert len(routes) == 2 * 4  # per unit: machine, bulk, controller-2's machine, its BMC
    trust = (config.layout.bmc("unit-2") / "trust.json").read_text()
    assert f"https://127.0.0.1:{unit.switch_ports['bulk']}/boot/v1/targets/" in trust
    assert f"127.0.0.1:{config.controller.machine_port}" not in trust, "units go via the switch"
    legacy = config.model_copy(update={"switch": None})
    assert switch.routes(legacy) == [], "a config from before the relay: straight over loopback"
