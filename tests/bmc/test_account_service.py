"""AccountService over real HTTPS: roles and the privilege map, lockout, password policy,
ETags. Every refused request also leaves the resource as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from racklet.net import client_context
from tests.bmc.twin_bench import ADMIN, OPERATOR, READER, UNIT, TwinBmc, running_twin_bmc

ACCOUNTS = "/redfish/v1/AccountService/Accounts"
RESET = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
SYSTEM = f"/redfish/v1/Systems/{UNIT}"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


def client(twin: TwinBmc, auth: tuple[str, str] | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=twin.url, verify=client_context(twin.ca), auth=auth, timeout=20.0
    )


async def test_predefined_roles_carry_the_dmtf_privileges(twin: TwinBmc) -> None:
    async with client(twin, READER) as http:
        roles = (await http.get("/redfish/v1/AccountService/Roles")).json()
        ids = sorted(m["@odata.id"].rsplit("/", 1)[1] for m in roles["Members"])
        assert ids == ["Administrator", "Operator", "ReadOnly"]
        operator = (await http.get("/redfish/v1/AccountService/Roles/Operator")).json()
    assert "ConfigureComponents" in operator["AssignedPrivileges"]
    assert "ConfigureUsers" not in operator["AssignedPrivileges"]


async def test_readonly_cannot_reset_or_patch_and_operator_cannot_manage_accounts(
    twin: TwinBmc,
) -> None:
    unit = twin.rack.unit(UNIT)
    async with client(twin, READER) as reader:
        refused = await reader.post(RESET, json={"ResetType": "On"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "Base.1.22.InsufficientPrivilege"
        patch = {"Boot": {"BootSourceOverrideTarget": "Usb"}}
        assert (await reader.patch(SYSTEM, json=patch)).status_code == 403
    assert not unit.powered
    async with client(twin, OPERATOR) as operator:
        new = {"UserName": "mallory", "Password": "a-long-enough-secret", "RoleId": "Operator"}
        assert (await operator.post(ACCOUNTS, json=new)).status_code == 403
        assert (await operator.delete(f"{ACCOUNTS}/{ADMIN[0]}")).status_code == 403
        assert (await operator.post(RESET, json={"ResetType": "On"})).status_code == 204
    async with client(twin, ADMIN) as admin:
        assert (await admin.get(f"{ACCOUNTS}/mallory")).status_code == 404
        assert (await admin.get(f"{ACCOUNTS}/{ADMIN[0]}")).status_code == 200


async def test_admin_creates_an_account_that_can_log_in_and_change_its_password(
    twin: TwinBmc,
) -> None:
    async with client(twin, ADMIN) as admin:
        weak = {"UserName": "bob", "Password": "short", "RoleId": "ReadOnly"}
        refused = await admin.post(ACCOUNTS, json=weak)
        assert refused.status_code == 400
        assert "PropertyValueFormatError" in refused.json()["error"]["code"]
        assert (await admin.get(f"{ACCOUNTS}/bob")).status_code == 404
        good = {**weak, "Password": "bob-has-a-long-password"}
        created = await admin.post(ACCOUNTS, json=good)
        assert created.status_code == 201
        assert created.headers["Location"] == f"{ACCOUNTS}/bob"
        assert (await admin.post(ACCOUNTS, json=good)).status_code == 409
    async with client(twin, ("bob", "bob-has-a-long-password")) as bob:
        changed = await bob.patch(f"{ACCOUNTS}/bob", json={"Password": "bob-picked-another-one"})
        assert changed.status_code == 200
        assert (await bob.get(f"{ACCOUNTS}/bob")).status_code == 401, "old password is dead"
    async with client(twin, ("bob", "bob-picked-another-one")) as bob:
        promote = await bob.patch(f"{ACCOUNTS}/bob", json={"RoleId": "Administrator"})
        assert promote.status_code == 403
        account = (await bob.get(f"{ACCOUNTS}/bob")).json()
        assert account["RoleId"] == "ReadOnly" and account["Password"] is None
    stored = (twin.state_dir / "accounts.json").read_text()
    assert "bob" in stored and "bob-picked-another-one" not in stored


async def test_repeated_failed_logins_lock_the_account_until_an_admin_unlocks_it(
    twin: TwinBmc,
) -> None:
    async with client(twin, None) as anonymous:
        for _ in range(5):
            bad = {"UserName": OPERATOR[0], "Password": "not-the-password"}
            failed = await anonymous.post("/redfish/v1/SessionService/Sessions", json=bad)
            assert failed.status_code == 401
        right = {"UserName": OPERATOR[0], "Password": OPERATOR[1]}
        locked = await anonymous.post("/redfish/v1/SessionService/Sessions", json=right)
        assert locked.status_code == 401, "a locked account refuses even the right password"
    async with client(twin, ADMIN) as admin:
        account = (await admin.get(f"{ACCOUNTS}/{OPERATOR[0]}")).json()
        assert account["Locked"] is True
        assert (await admin.get("/redfish/v1/AccountService")).json()[
            "AccountLockoutThreshold"
        ] == 5
        unlocked = await admin.patch(f"{ACCOUNTS}/{OPERATOR[0]}", json={"Locked": False})
        assert unlocked.status_code == 200 and unlocked.json()["Locked"] is False
    async with client(twin, None) as anonymous:
        opened = await anonymous.post("/redfish/v1/SessionService/Sessions", json=right)
        assert opened.status_code == 201


async def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(twin: TwinBmc) -> None:
    async with client(twin, ADMIN) as admin:
        first = await admin.get(f"{ACCOUNTS}/{READER[0]}")
        stale = first.headers["ETag"]
        assert first.json()["@odata.etag"] == stale
        moved = await admin.patch(
            f"{ACCOUNTS}/{READER[0]}", json={"RoleId": "Operator"}, headers={"If-Match": stale}
        )
        assert moved.status_code == 200
        again = await admin.patch(
            f"{ACCOUNTS}/{READER[0]}", json={"RoleId": "ReadOnly"}, headers={"If-Match": stale}
        )
        assert again.status_code == 412
        assert again.json()["error"]["code"] == "Base.1.22.PreconditionFailed"
        assert (await admin.get(f"{ACCOUNTS}/{READER[0]}")).json()["RoleId"] == "Operator"
