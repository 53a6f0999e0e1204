"""A standard Redfish client (sushy) powers a unit off and on; the board's switch follows."""

from __future__ import annotations

import asyncio

import sushy

from tests.bmc.conftest import ADMIN, UNIT, Bench, eventually


def _sushy(bench: Bench) -> tuple[sushy.Sushy, sushy.auth.SessionOrBasicAuth]:
    """A sushy client that logs in with a Redfish session (closed by the caller)."""
    auth = sushy.auth.SessionOrBasicAuth(username=ADMIN[0], password=ADMIN[1])
    return sushy.Sushy(bench.url + "/redfish/v1/", auth=auth, verify=str(bench.ca)), auth


async def test_sushy_powers_the_unit_off_and_on(bench: Bench) -> None:
    def off_then_on() -> tuple[object, object, list[str]]:
        conn, auth = _sushy(bench)
        try:
            return _off_then_on(conn)
        finally:
            auth.close()

    def _off_then_on(conn: sushy.Sushy) -> tuple[object, object, list[str]]:
        system = conn.get_system(f"/redfish/v1/Systems/{UNIT}")
        allowed = sorted(str(v) for v in system.get_allowed_reset_system_values())
        system.reset_system(sushy.RESET_ON)
        system.refresh()
        first = system.power_state
        system.reset_system(sushy.RESET_FORCE_OFF)
        system.refresh()
        return first, system.power_state, allowed

    first, second, allowed = await asyncio.to_thread(off_then_on)
    assert (first, second) == (sushy.PowerState.ON, sushy.PowerState.OFF)
    assert bench.unit.switch_log == [True, False]
    assert len(allowed) == 5


async def test_graceful_shutdown_waits_for_the_halt(bench: Bench) -> None:
    async with bench.client() as client:
        target = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
        assert (await client.post(target, json={"ResetType": "On"})).status_code == 204
        response = await client.post(target, json={"ResetType": "GracefulShutdown"})
        assert response.status_code == 204
        assert bench.unit.shutdown_requests == 1
        await eventually(lambda: not bench.unit.on, "the switch to open after the halt")
        body = (await client.get(f"/redfish/v1/Systems/{UNIT}")).json()
    assert body["PowerState"] == "Off"
    assert bench.unit.switch_log == [True, False]


async def test_graceful_shutdown_cuts_power_when_the_unit_ignores_it(bench: Bench) -> None:
    bench.unit.halts_on_request = False
    target = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
    async with bench.client() as client:
        await client.post(target, json={"ResetType": "On"})
        started = bench.board.clock.monotonic()
        await client.post(target, json={"ResetType": "GracefulShutdown"})
        body = (await client.get(f"/redfish/v1/Systems/{UNIT}")).json()
        assert body["PowerState"] == "PoweringOff"
        await eventually(lambda: not bench.unit.on, "the shutdown timeout", limit=20)
    # Not before the 20 simulated seconds of the timeout.
    assert bench.board.clock.monotonic() - started >= 20.0


async def test_power_cycle_and_force_restart(bench: Bench) -> None:
    target = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
    async with bench.client() as client:
        await client.post(target, json={"ResetType": "ForceRestart"})
        assert bench.unit.resets == 0  # off: nothing to restart
        await client.post(target, json={"ResetType": "On"})
        await client.post(target, json={"ResetType": "ForceRestart"})
        assert bench.unit.resets == 1
        await client.post(target, json={"ResetType": "PowerCycle"})
        assert bench.unit.on is False
        await eventually(lambda: bench.unit.on, "power to return after the cycle")
    assert bench.unit.switch_log == [True, False, True]


async def test_boot_override_patch_sets_the_boot_source(bench: Bench) -> None:
    path = f"/redfish/v1/Systems/{UNIT}"
    async with bench.client() as client:
        etag = (await client.get(path)).headers["ETag"]
        patch = {
            "Boot": {
                "BootSourceOverrideTarget": "UefiHttp",
                "BootSourceOverrideEnabled": "Continuous",
            }
        }
        response = await client.patch(path, json=patch, headers={"If-Match": etag})
        assert response.status_code == 200, response.text
        assert response.json()["Boot"]["BootSourceOverrideTarget"] == "UefiHttp"
        assert bench.boot_select.source == "UefiHttp"
        stale = await client.patch(path, json=patch, headers={"If-Match": 'W/"stale"'})
        assert stale.status_code == 412
        off = {"Boot": {"BootSourceOverrideEnabled": "Disabled"}}
        assert (await client.patch(path, json=off)).status_code == 200
    assert bench.boot_select.source == "SDCard"


async def test_a_reset_repeated_with_its_idempotency_key_is_carried_out_once(bench: Bench) -> None:
    """A controller taking over sends a recorded reset again with the same key: the BMC
    answers with the first outcome and does not act twice, even if the state moved since."""
    target = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
    key = {"Idempotency-Key": "1f0c/rollout-web-1"}
    async with bench.client() as client:
        assert (await client.post(target, json={"ResetType": "On"})).status_code == 204
        off = await client.post(target, json={"ResetType": "ForceOff"}, headers=key)
        assert off.status_code == 204
        assert (await client.post(target, json={"ResetType": "On"})).status_code == 204
        repeat = await client.post(target, json={"ResetType": "ForceOff"}, headers=key)
        assert repeat.status_code == 204
        assert bench.unit.switch_log == [True, False, True]  # the repeat did not switch off
        reused = await client.post(target, json={"ResetType": "On"}, headers=key)
        assert reused.status_code == 422
        info = reused.json()["error"]["@Message.ExtendedInfo"][0]
        assert info["MessageId"].endswith("HeaderInvalid") and "Idempotency-Key" in info["Message"]
        fresh = {"Idempotency-Key": "1f0c/rollout-web-2"}
        assert (
            await client.post(target, json={"ResetType": "ForceOff"}, headers=fresh)
        ).status_code == 204
        bad = await client.post(
            target, json={"ResetType": "On"}, headers={"Idempotency-Key": "x" * 300}
        )
        assert bad.status_code == 400
    assert bench.unit.switch_log == [True, False, True, False]
