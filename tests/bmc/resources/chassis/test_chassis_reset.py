"""``Chassis.Reset`` of a unit's tray (asked of each unit by OCP's rack-manager profile): the
tray's power is the unit's, so it is the System's Reset by another door, one mechanism."""

from __future__ import annotations

import asyncio

import sushy

from tests.bmc.conftest import ADMIN, READER, UNIT, Bench

CHASSIS = f"/redfish/v1/Chassis/{UNIT}"


def _client(
    bench: Bench, who: tuple[str, str]
) -> tuple[sushy.Sushy, sushy.auth.SessionOrBasicAuth]:
    auth = sushy.auth.SessionOrBasicAuth(username=who[0], password=who[1])
    return sushy.Sushy(bench.url + "/redfish/v1/", auth=auth, verify=str(bench.ca)), auth


async def test_sushy_powers_the_tray_on_and_off_through_the_chassis(bench: Bench) -> None:
    def on_then_off() -> tuple[list[str], object, object]:
        conn, auth = _client(bench, ADMIN)
        try:
            chassis = conn.get_chassis(CHASSIS)
            allowed = sorted(str(v) for v in chassis.get_allowed_reset_chassis_values())
            chassis.reset_chassis(sushy.RESET_TYPE_ON)
            on = conn.get_system(f"/redfish/v1/Systems/{UNIT}").power_state
            chassis.reset_chassis(sushy.RESET_TYPE_FORCE_OFF)
            chassis.refresh()
            return allowed, on, chassis.power_state
        finally:
            auth.close()

    allowed, on, off = await asyncio.to_thread(on_then_off)
    assert len(allowed) == 5  # the System's reset types: the same power
    assert (on, off) == (sushy.PowerState.ON, sushy.PowerState.OFF)
    assert bench.unit.switch_log == [True, False]


async def test_a_reader_cannot_reset_the_tray(bench: Bench) -> None:
    def reset() -> None:
        conn, auth = _client(bench, READER)
        try:
            conn.get_chassis(CHASSIS).reset_chassis(sushy.RESET_TYPE_ON)
        finally:
            auth.close()

    try:
        await asyncio.to_thread(reset)
    except sushy.exceptions.AccessError as exc:
        assert exc.status_code == 403
    else:
        raise AssertionError("a ReadOnly account reset the tray")
    assert bench.unit.switch_log == []


async def test_one_idempotency_key_through_system_and_chassis_resets_once(bench: Bench) -> None:
    key = {"Idempotency-Key": "rollout-7/unit-1"}
    async with bench.client() as client:
        system = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
        chassis = f"{CHASSIS}/Actions/Chassis.Reset"
        assert (await client.post(system, json={"ResetType": "On"}, headers=key)).status_code == 204
        again = await client.post(chassis, json={"ResetType": "On"}, headers=key)
        assert again.status_code == 204
        bad = await client.post(chassis, json={"ResetType": "Suspend"})
        assert bad.status_code == 400
        assert "Suspend" in bad.json()["error"]["@Message.ExtendedInfo"][0]["Message"]
    assert bench.unit.switch_log == [True]
