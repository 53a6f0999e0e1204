"""Bad requests get Redfish error bodies from the Base registry, never a 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from racklet.bmc._http import registry as _message_registry
from tests.bmc.conftest import UNIT, Bench

RESET = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
# vendored, DMTF licence beside it
REGISTRY = Path(__file__).parents[1] / "dmtf" / "Base.1.22.1.json"


def _code(response: object) -> str:
    return str(response.json()["error"]["code"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "path",
    [
        "/redfish/v1/Nowhere",
        "/redfish/v1/Systems/unit-9",
        f"/redfish/v1/Chassis/{UNIT}/Sensors/humidity",
        "/redfish/v1/Managers/other",
        f"/redfish/v1/Systems/{UNIT}/LogServices/Audit",
        f"/redfish/v1/Systems/{UNIT}/LogServices/Console/Entries/999",
    ],
)
async def test_unknown_resources_are_404_with_a_redfish_body(bench: Bench, path: str) -> None:
    async with bench.client() as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json;charset=utf-8"
    assert _code(response) == "Base.1.22.ResourceNotFound"


async def test_bad_reset_type_names_the_allowable_values(bench: Bench) -> None:
    async with bench.client() as client:
        response = await client.post(RESET, json={"ResetType": "Explode"})
    assert response.status_code == 400
    info = response.json()["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageId"] == "Base.1.22.ActionParameterValueNotInList"
    assert info["MessageArgs"] == ["Explode", "ResetType", "ComputerSystem.Reset"]
    for allowed in ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"):
        assert allowed in info["Resolution"]
    assert bench.unit.switch_log == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "Base.1.22.MalformedJSON"),
        (b"[1, 2]", "Base.1.22.MalformedJSON"),
        (b'{"ResetType": 3}', "Base.1.22.ActionParameterValueTypeError"),
        (b"{}", "Base.1.22.ActionParameterMissing"),
        (b'{"ResetType": "On", "Force": true}', "Base.1.22.ActionParameterUnknown"),
    ],
)
async def test_malformed_action_bodies_are_400(bench: Bench, body: bytes, code: str) -> None:
    async with bench.client() as client:
        response = await client.post(
            RESET, content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert _code(response) == code


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ({"PowerState": "On"}, "Base.1.22.PropertyNotWritable"),
        ({"Colour": "blue"}, "Base.1.22.PropertyUnknown"),
        ({"Boot": {"BootSourceOverrideTarget": "Floppy"}}, "Base.1.22.PropertyValueNotInList"),
        ({"Boot": {"BootSourceOverrideEnabled": 1}}, "Base.1.22.PropertyValueTypeError"),
        ({"Boot": "SDCard"}, "Base.1.22.PropertyValueTypeError"),
    ],
)
async def test_bad_patches_are_400(bench: Bench, patch: dict[str, object], code: str) -> None:
    async with bench.client() as client:
        response = await client.patch(f"/redfish/v1/Systems/{UNIT}", json=patch)
    assert response.status_code == 400
    assert _code(response) == code


async def test_wrong_method_is_405(bench: Bench) -> None:
    async with bench.client() as client:
        response = await client.delete(f"/redfish/v1/Systems/{UNIT}")
    assert response.status_code == 405
    assert _code(response) == "Base.1.22.OperationNotAllowed"
    assert "PATCH" in response.headers["Allow"]


async def test_bad_paging_parameters_are_400(bench: Bench) -> None:
    path = f"/redfish/v1/Systems/{UNIT}/LogServices/Console/Entries"
    async with bench.client() as client:
        assert _code(await client.get(path, params={"$top": "x"})).endswith("ValueTypeError")
        assert _code(await client.get(path, params={"$skip": "-1"})).endswith("OutOfRange")


def test_messages_match_the_base_registry() -> None:
    registry = json.loads(REGISTRY.read_text())["Messages"]
    for key, entry in _message_registry._BASE.items():
        assert registry[key]["Message"] == entry.text, key
        assert registry[key]["MessageSeverity"] == entry.severity, key
        assert registry[key]["Resolution"] == entry.resolution, key


async def test_unsupported_dollar_queries_are_501(bench: Bench) -> None:
    async with bench.client() as client:
        response = await client.get(f"/redfish/v1/Systems/{UNIT}", params={"$expand": "*"})
        ignored = await client.get(f"/redfish/v1/Systems/{UNIT}", params={"other": "1"})
    assert response.status_code == 501
    assert _code(response) == "Base.1.22.QueryNotSupported"
    assert ignored.status_code == 200


async def test_concurrent_resets_leave_one_consistent_outcome(bench: Bench) -> None:
    async with bench.client() as client:
        answers = await asyncio.gather(
            *(client.post(RESET, json={"ResetType": t}) for t in ["On", "ForceOff"] * 5)
        )
        state = (await client.get(f"/redfish/v1/Systems/{UNIT}")).json()["PowerState"]
    assert {a.status_code for a in answers} == {204}
    assert state == ("On" if bench.unit.on else "Off")
