"""AccountService over real HTTPS: roles and the privilege map, lockout, password policy,
ETags. Every refused request also leaves the resource as it was."""

from __future__ import annotations

import asyncio
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
        assert ids == ["Administrator", "Operator", "RackController", "ReadOnly"]
        operator = (await http.get("/redfish/v1/AccountService/Roles/Operator")).json()
        controller = (await http.get("/redfish/v1/AccountService/Roles/RackController")).json()
    assert "ConfigureComponents" in operator["AssignedPrivileges"]
    assert "ConfigureUsers" not in operator["AssignedPrivileges"]
    # The controller's certificate: an Operator that may also renew certificates, no more.
    assert controller["AssignedPrivileges"] == operator["AssignedPrivileges"]
    assert controller["OemPrivileges"] == ["RackletConfigureCertificates"]


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


def from_address(twin: TwinBmc, address: str, auth: tuple[str, str] | None) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (another loopback source)."""
    transport = httpx.AsyncHTTPTransport(verify=client_context(twin.ca), local_address=address)
    return httpx.AsyncClient(base_url=twin.url, transport=transport, auth=auth, timeout=20.0)


async def test_failed_logins_lock_the_account_for_their_source_until_an_admin_unlocks_it(
    twin: TwinBmc,
) -> None:
    bad = {"UserName": OPERATOR[0], "Password": "not-the-password"}
    right = {"UserName": OPERATOR[0], "Password": OPERATOR[1]}
    async with from_address(twin, "127.0.0.2", None) as attacker:
        for _ in range(5):
            failed = await attacker.post("/redfish/v1/SessionService/Sessions", json=bad)
            assert failed.status_code == 401
        locked = await attacker.post("/redfish/v1/SessionService/Sessions", json=right)
        assert locked.status_code == 401, "locked for that source: even the right password"
    async with client(twin, None) as elsewhere:
        opened = await elsewhere.post("/redfish/v1/SessionService/Sessions", json=right)
        assert opened.status_code == 201, "another source is not locked out"
    async with client(twin, ADMIN) as admin:
        account = (await admin.get(f"{ACCOUNTS}/{OPERATOR[0]}")).json()
        assert account["Locked"] is True
        assert (await admin.get("/redfish/v1/AccountService")).json()[
            "AccountLockoutThreshold"
        ] == 5
        unlocked = await admin.patch(f"{ACCOUNTS}/{OPERATOR[0]}", json={"Locked": False})
        assert unlocked.status_code == 200 and unlocked.json()["Locked"] is False
        log = await admin.get("/redfish/v1/Managers/bmc/LogServices/EventLog/Entries")
        ids = [(e["MessageId"], e["MessageArgs"][0]) for e in log.json()["Members"]]
    account_events = [i for i in ids if i[0].startswith("AccountSecurity.")]
    assert account_events == [
        ("AccountSecurity.1.0.InvalidCredentials", OPERATOR[0]),
        ("AccountSecurity.1.0.AccountLocked", OPERATOR[0]),
        ("AccountSecurity.1.0.AccountUnlocked", OPERATOR[0]),
    ]
    async with from_address(twin, "127.0.0.2", None) as attacker:
        opened = await attacker.post("/redfish/v1/SessionService/Sessions", json=right)
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


async def test_fifty_wrong_logins_from_one_source_slow_it_and_leave_the_controller_in(
    tmp_path: Path,
) -> None:
    from racklet.bmc._state.throttle import BackoffPolicy
    from racklet.redfish import RedfishClient

    # Never a wait in a test: after six failures the source gets one try a minute and
    # anything that would have to wait for it is refused at once (503, Retry-After).
    quick = BackoffPolicy(source_threshold=6, delay=60.0, max_delay=60.0, max_wait=0.0)
    async with running_twin_bmc(tmp_path / "rack", login_backoff=quick) as twin:
        bad = {"UserName": ADMIN[0], "Password": "guess"}
        statuses: list[int] = []
        async with from_address(twin, "127.0.0.2", None) as attacker:
            for _ in range(5):  # ten at a time, as a scripted attacker would
                answers = await asyncio.gather(
                    *(
                        attacker.post("/redfish/v1/SessionService/Sessions", json=bad)
                        for _ in range(10)
                    )
                )
                statuses += [a.status_code for a in answers]
                assert all(
                    a.headers.get("Retry-After", "").isdigit()
                    for a in answers
                    if a.status_code == 503
                )
        assert set(statuses) <= {401, 503} and statuses.count(401) >= 5
        assert statuses.count(503) >= 30, "a source that keeps guessing is told to wait"
        throttle = twin.service._accounts.throttle
        assert throttle.delay("127.0.0.2") == quick.max_delay
        assert throttle.delay("127.0.0.1") == 0.0

        # The controller logs in with its certificate, never a password: still in.
        key, crt = twin.pki.issue(
            "racklet-controller", role="controller", server=False, client=True
        ).write(tmp_path, "controller")
        async with RedfishClient(
            twin.url, "racklet-controller", None, ca_bundle=twin.ca, client_cert=(crt, key)
        ) as controller:
            await controller.reset(UNIT, "On")
            assert (await controller.system(UNIT)).power_state in ("On", "PoweringOn")
            csr = await controller.generate_csr(f"{SYSTEM}/Certificates", UNIT)
            assert "CERTIFICATE REQUEST" in csr

        async with client(twin, ADMIN) as admin:  # from another address than the attacker's
            assert (await admin.get(f"{ACCOUNTS}/{ADMIN[0]}")).json()["Locked"] is True
            log = await admin.get("/redfish/v1/Managers/bmc/LogServices/EventLog/Entries")
        ids = [e["MessageId"] for e in log.json()["Members"]]
        assert "AccountSecurity.1.0.AccountLocked" in ids
        assert ids.count("AccountSecurity.1.0.InvalidCredentials") == 1, "no flood"


async def test_a_certificate_only_client_is_refused_without_trying_a_password(
    twin: TwinBmc, tmp_path: Path
) -> None:
    from racklet.redfish import RedfishClient, RedfishError

    key, crt = twin.pki.issue("someone-else", server=False, client=True).write(tmp_path, "stranger")
    async with RedfishClient(
        twin.url, ADMIN[0], None, ca_bundle=twin.ca, client_cert=(crt, key)
    ) as stranger:
        with pytest.raises(RedfishError) as refused:
            await stranger.system(UNIT)
    assert refused.value.status == 401
    assert twin.service._accounts.throttle.delay("127.0.0.1") == 0.0
    assert not twin.service._accounts.locked(ADMIN[0])
