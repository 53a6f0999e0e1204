"""The unit's power cap through Redfish: ``Chassis/unit-1/Controls/PowerLimit`` caps the twin
unit's true draw, refuses a set-point outside its range, needs ConfigureComponents, and is
excerpted in EnvironmentMetrics; ``Override`` while the supply sags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from racklet.net import client_context
from tests.bmc.conftest import eventually
from tests.bmc.twin_bench import ADMIN, OPERATOR, READER, UNIT, TwinBmc, running_twin_bmc

CHASSIS = f"/redfish/v1/Chassis/{UNIT}"
CONTROL = f"{CHASSIS}/Controls/PowerLimit"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


def _client(twin: TwinBmc, who: tuple[str, str] = ADMIN) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=twin.url, verify=client_context(twin.ca), auth=who)


async def test_a_set_point_caps_the_units_true_draw_and_disabled_lifts_it(twin: TwinBmc) -> None:
    unit = twin.rack.unit(UNIT)
    async with _client(twin) as admin, _client(twin, OPERATOR) as operator:
        await admin.post(
            f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        await eventually(
            lambda: unit.activity is not None and unit.activity.value == "running",
            "the unit to run",
        )
        unit.set_load(1.0)
        chassis = (await admin.get(CHASSIS)).json()
        assert chassis["Controls"] == {"@odata.id": f"{CHASSIS}/Controls"}
        members = (await admin.get(f"{CHASSIS}/Controls")).json()["Members"]
        assert members == [{"@odata.id": CONTROL}]
        control = (await admin.get(CONTROL)).json()
        assert control["ControlType"] == "Power" and control["ControlMode"] == "Disabled"
        assert control["AllowableMin"] == pytest.approx(unit.floor_watts, abs=1e-3)
        assert control["AllowableMax"] == pytest.approx(unit.full_load_watts, abs=1e-3)

        reply = await operator.patch(CONTROL, json={"SetPoint": 4.5})
        assert reply.status_code == 200, reply.text
        assert reply.json()["ControlMode"] == "Automatic" and reply.json()["SetPoint"] == 4.5
        assert unit.power_limit_watts == 4.5 and unit.power_watts == pytest.approx(4.5)
        await eventually(lambda: unit.limiting, "the unit to be held back")
        env = (await admin.get(f"{CHASSIS}/EnvironmentMetrics")).json()
        assert env["PowerLimitWatts"]["SetPoint"] == 4.5
        assert env["PowerLimitWatts"]["DataSourceUri"] == CONTROL
        assert env["PowerLimitWatts"]["ControlMode"] == "Automatic"
        # A sag: the supply holds the unit's floor and the rest of the rack (its fans), not its
        # capped draw; the firmware overrides the cap.
        # The rack's undriven fans spin up to full speed; the rest of the rack is counted
        # once they have (and now: the busbar's last sample may predate the cap).
        rack = twin.rack
        await eventually(
            lambda: all(fan.power_watts > 0.99 * fan.rated_watts for fan in rack.rack_fans),
            "the rack's fans at full speed",
        )
        rest = sum(fan.rated_watts for fan in rack.rack_fans) + sum(
            other.power_watts for other in rack.units.values() if other is not unit
        )
        rack.busbar.rated_watts = rest + (unit.floor_watts + 4.5) / 2
        await eventually(lambda: unit.under_voltage, "an under-voltage throttle")
        control = (await admin.get(CONTROL)).json()
        assert control["ControlMode"] == "Override"
        assert unit.power_watts == pytest.approx(unit.floor_watts)
        twin.rack.busbar.rated_watts = 100.0
        await eventually(lambda: not unit.under_voltage, "the supply back")

        reply = await operator.patch(CONTROL, json={"ControlMode": "Disabled"})
        assert reply.status_code == 200 and reply.json()["ControlMode"] == "Disabled"
        assert unit.power_limit_watts is None
        assert unit.power_watts == pytest.approx(unit.full_load_watts)
        reply = await operator.patch(CONTROL, json={"ControlMode": "Automatic"})
        assert unit.power_limit_watts == 4.5, "Automatic alone re-applies the last set-point"


async def test_bad_set_points_and_readers_are_refused_and_change_nothing(twin: TwinBmc) -> None:
    unit = twin.rack.unit(UNIT)
    async with _client(twin) as admin, _client(twin, READER) as reader:
        for body, code in (
            ({"SetPoint": 0.5}, "PropertyValueOutOfRange"),  # below the floor
            ({"SetPoint": 99}, "PropertyValueOutOfRange"),
            ({"SetPoint": "4"}, "PropertyValueTypeError"),
            ({"SetPoint": True}, "PropertyValueTypeError"),
            ({"ControlMode": "Override"}, "PropertyValueNotInList"),
            ({"AllowableMin": 1}, "PropertyNotWritable"),
            ({"Volts": 1}, "PropertyUnknown"),
        ):
            reply = await admin.patch(CONTROL, json=body)
            assert reply.status_code == 400, body
            assert reply.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(code)
        assert unit.power_limit_watts is None
        assert (await reader.patch(CONTROL, json={"SetPoint": 4.5})).status_code == 403
        assert unit.power_limit_watts is None
        assert (await admin.get(f"{CHASSIS}/Controls/Nope")).status_code == 404


async def test_the_environment_metrics_excerpt_writes_the_same_cap(twin: TwinBmc) -> None:
    """PATCH ``EnvironmentMetrics.PowerLimitWatts`` (what the OCP baseline profile writes) is
    the control's own PATCH: same cap, same range, same refusals, same privilege."""
    unit = twin.rack.unit(UNIT)
    env_path = f"{CHASSIS}/EnvironmentMetrics"
    async with _client(twin, OPERATOR) as operator, _client(twin, READER) as reader:
        refused = await reader.patch(env_path, json={"PowerLimitWatts": {"SetPoint": 4.5}})
        assert refused.status_code == 403 and unit.power_limit_watts is None
        for body, code, pointer in (
            ({"PowerLimitWatts": {"SetPoint": 99}}, "PropertyValueOutOfRange", "SetPoint"),
            ({"PowerLimitWatts": {"SetPoint": "4"}}, "PropertyValueTypeError", "SetPoint"),
            ({"PowerLimitWatts": {"Reading": 1}}, "PropertyNotWritable", "Reading"),
            ({"PowerLimitWatts": 4.5}, "PropertyValueTypeError", ""),
            ({"PowerWatts": {"Reading": 1}}, "PropertyNotWritable", None),
        ):
            reply = await operator.patch(env_path, json=body)
            assert reply.status_code == 400, body
            info = reply.json()["error"]["@Message.ExtendedInfo"][0]
            assert info["MessageId"].endswith(code), (body, info)
            if pointer is not None:
                where = f"PowerLimitWatts/{pointer}".rstrip("/")
                assert where in info["MessageArgs"], info
        assert unit.power_limit_watts is None, "a refused PATCH changes nothing"

        reply = await operator.patch(env_path, json={"PowerLimitWatts": {"SetPoint": 4.5}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["PowerLimitWatts"]["SetPoint"] == 4.5
        assert unit.power_limit_watts == 4.5
        control = (await operator.get(CONTROL)).json()
        assert (control["SetPoint"], control["ControlMode"]) == (4.5, "Automatic")
        lifted = await operator.patch(
            env_path, json={"PowerLimitWatts": {"ControlMode": "Disabled"}}
        )
        assert lifted.json()["PowerLimitWatts"]["ControlMode"] == "Disabled"
        assert unit.power_limit_watts is None


async def test_the_old_power_resources_power_limit_is_the_same_cap(twin: TwinBmc) -> None:
    """``Power.PowerControl[0].PowerLimit.LimitInWatts`` (OCP's rack-manager profile, older
    tools) reads and writes the control's cap; ``null`` lifts it."""
    unit = twin.rack.unit(UNIT)
    power = f"{CHASSIS}/Power"

    def limit_of(watts: object) -> dict[str, object]:
        return {"PowerControl": [{"PowerLimit": {"LimitInWatts": watts}}]}

    async with _client(twin, OPERATOR) as operator, _client(twin, READER) as reader:
        shown = (await reader.get(power)).json()["PowerControl"][0]["PowerLimit"]
        assert shown["LimitInWatts"] is None, "no cap yet"
        assert (await reader.patch(power, json=limit_of(4.5))).status_code == 403
        for body, code, pointer in (
            (limit_of(99), "PropertyValueOutOfRange", "PowerControl/0/PowerLimit/LimitInWatts"),
            (limit_of("4"), "PropertyValueTypeError", "PowerControl/0/PowerLimit/LimitInWatts"),
            (
                {"PowerControl": [{"PowerLimit": {"LimitException": "HardPowerOff"}}]},
                "PropertyNotWritable",
                "PowerControl/0/PowerLimit/LimitException",
            ),
            (
                {"PowerControl": [{"PowerConsumedWatts": 1}]},
                "PropertyNotWritable",
                "PowerControl/0/PowerConsumedWatts",
            ),
            ({"Voltages": []}, "PropertyNotWritable", "Voltages"),
        ):
            reply = await operator.patch(power, json=body)
            assert reply.status_code == 400, body
            info = reply.json()["error"]["@Message.ExtendedInfo"][0]
            assert info["MessageId"].endswith(code) and pointer in info["MessageArgs"], info
        assert unit.power_limit_watts is None, "a refused PATCH changes nothing"

        reply = await operator.patch(power, json=limit_of(4.5))
        assert reply.status_code == 200, reply.text
        assert reply.json()["PowerControl"][0]["PowerLimit"]["LimitInWatts"] == 4.5
        assert unit.power_limit_watts == 4.5
        control = (await operator.get(CONTROL)).json()
        assert (control["SetPoint"], control["ControlMode"]) == (4.5, "Automatic")
        lifted = await operator.patch(power, json=limit_of(None))
        assert lifted.json()["PowerControl"][0]["PowerLimit"]["LimitInWatts"] is None
        assert unit.power_limit_watts is None
