"""Authentication: everything but the entry points needs a session or Basic credentials."""

from __future__ import annotations

import pytest

from racklet.bmc._state.sessions import SessionStore
from tests.bmc.conftest import ADMIN, READER, UNIT, Bench

SYSTEM = f"/redfish/v1/Systems/{UNIT}"
SESSIONS = "/redfish/v1/SessionService/Sessions"


@pytest.mark.parametrize(
    "path", [SYSTEM, "/redfish/v1/Systems", "/redfish/v1/Chassis", SESSIONS, "/redfish/v1/Nowhere"]
)
async def test_protected_resources_answer_401_with_a_redfish_body(bench: Bench, path: str) -> None:
    async with bench.client(auth=None) as client:
        response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Racklet BMC"'
    assert response.headers["OData-Version"] == "4.0"
    error = response.json()["error"]
    assert error["code"] == "Base.1.22.NoValidSession"
    assert error["@Message.ExtendedInfo"][0]["MessageId"] == "Base.1.22.NoValidSession"


async def test_wrong_password_and_unknown_token_are_refused(bench: Bench) -> None:
    async with bench.client(auth=(ADMIN[0], "wrong")) as client:
        assert (await client.get(SYSTEM)).status_code == 401
    async with bench.client(auth=None) as client:
        response = await client.get(SYSTEM, headers={"X-Auth-Token": "made-up"})
        assert response.status_code == 401
        bad = await client.post(SESSIONS, json={"UserName": ADMIN[0], "Password": "nope"})
        assert bad.status_code == 401


async def test_entry_points_are_open(bench: Bench) -> None:
    async with bench.client(auth=None) as client:
        assert (await client.get("/redfish")).json() == {"v1": "/redfish/v1/"}
        root = (await client.get("/redfish/v1/")).json()
        again = (await client.get("/redfish/v1")).json()
        assert (await client.get("/redfish/v1/$metadata")).status_code == 200
        assert (await client.get("/redfish/v1/odata")).status_code == 200
    assert root["Links"]["Sessions"] == {"@odata.id": SESSIONS}
    assert root["UUID"] == again["UUID"]
    assert root["Systems"] == {"@odata.id": "/redfish/v1/Systems"}


async def test_session_login_use_and_logout(bench: Bench) -> None:
    async with bench.client(auth=None) as client:
        login = await client.post(SESSIONS, json={"UserName": ADMIN[0], "Password": ADMIN[1]})
        assert login.status_code == 201
        token, location = login.headers["X-Auth-Token"], login.headers["Location"]
        assert login.json()["@odata.id"] == location
        assert login.json()["UserName"] == ADMIN[0]
        assert login.json()["Password"] is None
        headers = {"X-Auth-Token": token}
        assert (await client.get(SYSTEM, headers=headers)).status_code == 200
        listed = (await client.get(SESSIONS, headers=headers)).json()
        assert {"@odata.id": location} in listed["Members"]
        assert (await client.delete(location, headers=headers)).status_code == 204
        assert (await client.get(SYSTEM, headers=headers)).status_code == 401


async def test_read_only_account_cannot_change_anything(bench: Bench) -> None:
    async with bench.client(auth=READER) as client:
        assert (await client.get(SYSTEM)).status_code == 200
        response = await client.post(
            f"{SYSTEM}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Base.1.22.InsufficientPrivilege"
    assert bench.unit.switch_log == []


async def test_read_only_account_may_close_its_own_session(bench: Bench) -> None:
    async with bench.client(auth=None) as client:
        login = await client.post(SESSIONS, json={"UserName": READER[0], "Password": READER[1]})
        headers = {"X-Auth-Token": login.headers["X-Auth-Token"]}
        response = await client.delete(login.headers["Location"], headers=headers)
        assert response.status_code == 204


def test_sessions_expire_after_the_idle_timeout() -> None:
    now = [1000.0]
    store = SessionStore(timeout=60, now=lambda: now[0])
    session = store.create("admin", "Administrator")
    now[0] += 59
    assert store.touch(session.token) is session  # use restarts the idle timer
    now[0] += 59
    assert store.touch(session.token) is session
    now[0] += 61
    assert store.touch(session.token) is None
    assert store.sessions() == []


async def test_session_timeout_is_writable_within_the_schema_range(bench: Bench) -> None:
    async with bench.client() as client:
        ok = await client.patch("/redfish/v1/SessionService", json={"SessionTimeout": 120})
        assert ok.status_code == 200 and ok.json()["SessionTimeout"] == 120
        low = await client.patch("/redfish/v1/SessionService", json={"SessionTimeout": 5})
        assert low.status_code == 400
        assert low.json()["error"]["code"] == "Base.1.22.PropertyValueOutOfRange"
        assert (await client.get("/redfish/v1/SessionService")).json()["SessionTimeout"] == 120
