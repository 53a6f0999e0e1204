"""Property-based fuzzing of the mutating endpoints: whatever the body, the BMC answers
with a Redfish error or a success, never a 5xx, and a rejected request changes nothing.
The firmware push gets its own fuzz over multipart parts (names, parameters, files)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bmc.conftest import UNIT, Bench

SYSTEM = f"/redfish/v1/Systems/{UNIT}"
INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
PUSH = "/redfish/v1/UpdateService/update-multipart"
NIC = "/redfish/v1/Managers/bmc/EthernetInterfaces/eth0"
CONTROL = f"/redfish/v1/Chassis/{UNIT}/Controls/PowerLimit"
SUBSCRIPTIONS = "/redfish/v1/EventService/Subscriptions"
TARGETS = [
    ("PATCH", SYSTEM),
    ("POST", f"{SYSTEM}/Actions/ComputerSystem.Reset"),
    ("PATCH", "/redfish/v1/SessionService"),
    ("PATCH", "/redfish/v1/AccountService"),
    ("POST", "/redfish/v1/AccountService/Accounts"),
    ("PATCH", "/redfish/v1/AccountService/Accounts/reader"),
    ("PATCH", "/redfish/v1/AccountService/Accounts/admin"),
    ("POST", "/redfish/v1/UpdateService/update-multipart"),
    ("PATCH", "/redfish/v1/UpdateService"),
    ("POST", "/redfish/v1/Systems/../Managers/bmc"),
    ("POST", f"{SYSTEM}/Actions/ComputerSystem.Explode"),
    ("PATCH", NIC),
    ("PATCH", f"/redfish/v1/Chassis/{UNIT}/EnvironmentMetrics"),
    ("POST", SUBSCRIPTIONS),
]
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "Boot",
        "ResetType",
        "SessionTimeout",
        "UserName",
        "Password",
        "RoleId",
        "Enabled",
        "Locked",
        "AccountLockoutThreshold",
        "PowerState",
        "HostName",
        "FQDN",
        "IPv4Addresses",
        "NameServers",
        "PowerLimitWatts",
        "Id",
        "@odata.id",
    ]
)
_bodies = st.one_of(
    st.dictionaries(_keys, _json, max_size=3).map(lambda d: json.dumps(d).encode()),
    _json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


async def _state(bench: Bench) -> dict[str, Any]:
    async with bench.client() as http:
        system = (await http.get(SYSTEM)).json()
        accounts = (await http.get("/redfish/v1/AccountService/Accounts")).json()
        service = (await http.get("/redfish/v1/AccountService")).json()
        sessions = (await http.get("/redfish/v1/SessionService")).json()
        inventory = [
            (await http.get(f"{INVENTORY}/{item}")).json() for item in ("bmc", "slot-a", "slot-b")
        ]
        tasks = (await http.get("/redfish/v1/TaskService/Tasks")).json()
        nic = (await http.get(NIC)).json()
        control = (await http.get(CONTROL)).json()
        subscriptions = (await http.get(SUBSCRIPTIONS)).json()
    system.pop("@odata.etag", None)
    nic.pop("@odata.etag", None)
    service.pop("@odata.etag", None)
    for volatile in ("BootProgress", "PowerState"):
        system.pop(volatile, None)
    uploads = bench.state_dir / "uploads"
    return {
        "system": system,
        "accounts": accounts,
        "service": service,
        "sessions": sessions,
        "inventory": inventory,
        "tasks": tasks,
        "nic": nic,
        "cap": (control.get("ControlMode"), control.get("SetPoint")),
        "subscriptions": subscriptions,
        "uploads": sorted(uploads.iterdir()) if uploads.exists() else [],
    }


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=st.sampled_from(TARGETS), body=_bodies)
async def test_no_body_makes_a_5xx_and_rejected_ones_change_nothing(
    bench: Bench, target: tuple[str, str], body: bytes
) -> None:
    before = await _state(bench)
    switches = len(bench.unit.switch_log)
    method, path = target
    async with bench.client() as http:
        response = await http.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "error" in response.json()
        assert await _state(bench) == before
        assert len(bench.unit.switch_log) == switches


_part_names = st.sampled_from(["UpdateParameters", "UpdateFile", "OemParameters", "Other", ""])
_parameters = st.one_of(
    st.dictionaries(
        st.sampled_from(["Targets", "@Redfish.OperationApplyTime", "ForceUpdate", "Oem"]),
        _json | st.lists(st.sampled_from([f"{INVENTORY}/slot-b", f"{INVENTORY}/bmc", "x"])),
        max_size=3,
    ).map(json.dumps),
    _json.map(json.dumps),
    st.text(max_size=40),
)
_parts = st.lists(
    st.tuples(
        _part_names,
        st.one_of(
            _parameters.map(lambda text: (None, text, "application/json")),
            st.tuples(
                st.text(max_size=20), st.binary(max_size=256), st.just("application/octet-stream")
            ),
        ),
    ),
    max_size=4,
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(parts=_parts)
async def test_no_multipart_push_makes_a_5xx_and_rejected_ones_store_nothing(
    bench: Bench, parts: list[tuple[str, tuple[Any, Any, str]]]
) -> None:
    before = await _state(bench)
    async with bench.client() as http:
        response = await http.post(PUSH, files=parts or {"": (None, "", "text/plain")})
        assert response.status_code < 500, response.text
        if response.status_code == 202:
            # Accepted for verification: the task must fail (this BMC has no verifier).
            await bench.service.tasks.wait(response.json()["Id"])
            final = await http.get(response.headers["Location"])
            assert final.json()["error"]["code"] == "Update.1.3.VerificationFailed"
    if response.status_code >= 400:
        assert "error" in response.json()
        assert await _state(bench) == before
    assert (await _state(bench))["inventory"] == before["inventory"]
    assert (await _state(bench))["uploads"] == []
