"""Every class of route answers 401, 403, 404, 405 and 412 the Redfish way; expired and
forged session tokens are refused; the serial console streams over a WebSocket."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from racklet.net import client_context
from tests.bmc.conftest import ADMIN, READER, UNIT, Bench, FastClock, running_bench

SYSTEM = f"/redfish/v1/Systems/{UNIT}"
SESSIONS = "/redfish/v1/SessionService/Sessions"

# One representative per route class: a resource, an action, a collection, a service, a log
# action, the firmware push.
WRITES = [
    ("PATCH", SYSTEM, {"Boot": {"BootSourceOverrideTarget": "Pxe"}}),
    ("POST", f"{SYSTEM}/Actions/ComputerSystem.Reset", {"ResetType": "On"}),
    (
        "POST",
        "/redfish/v1/AccountService/Accounts",
        {"UserName": "mallory", "Password": "long enough password", "RoleId": "Operator"},
    ),
    ("PATCH", "/redfish/v1/SessionService", {"SessionTimeout": 60}),
    ("POST", f"{SYSTEM}/LogServices/Console/Actions/LogService.ClearLog", {}),
    ("POST", "/redfish/v1/UpdateService/update-multipart", {}),
]
READS = [
    SYSTEM,
    f"/redfish/v1/Chassis/{UNIT}/Sensors/power",
    "/redfish/v1/AccountService/Accounts",
    "/redfish/v1/Managers/bmc/NetworkProtocol",
    "/redfish/v1/UpdateService/FirmwareInventory",
    "/redfish/v1/TaskService/Tasks",
    f"{SYSTEM}/LogServices/Console/Entries",
]


class HostClock:
    """A host clock the test moves (sessions expire on real, not simulated, time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def host_clock() -> HostClock:
    return HostClock()


@pytest.fixture
async def timed(tmp_path: Path, host_clock: HostClock) -> AsyncIterator[Bench]:
    async with running_bench(
        tmp_path, FastClock(), session_timeout=60, session_clock=host_clock
    ) as running:
        yield running


def _assert_redfish_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == f"Base.1.22.{code}"
    assert response.headers["OData-Version"] == "4.0"


async def _login(bench: Bench, who: tuple[str, str]) -> tuple[str, str]:
    async with bench.client(auth=None) as http:
        response = await http.post(SESSIONS, json={"UserName": who[0], "Password": who[1]})
        assert response.status_code == 201
        return response.headers["X-Auth-Token"], response.headers["Location"]


async def test_an_expired_session_token_is_refused(timed: Bench, host_clock: HostClock) -> None:
    token, _ = await _login(timed, ADMIN)
    async with timed.client(auth=None) as http:
        assert (await http.get(SYSTEM, headers={"X-Auth-Token": token})).status_code == 200
        host_clock.now += 61
        expired = await http.get(SYSTEM, headers={"X-Auth-Token": token})
        _assert_redfish_error(expired, 401, "NoValidSession")
        assert expired.headers["WWW-Authenticate"].startswith("Basic")
        change = await http.patch(
            SYSTEM,
            headers={"X-Auth-Token": token},
            json={"Boot": {"BootSourceOverrideTarget": "Pxe"}},
        )
        _assert_redfish_error(change, 401, "NoValidSession")
    assert timed.boot_select.source.value == "SDCard"


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: "",
        lambda token: "x" * 4096,
        lambda token: base64.b64encode(b"admin:" + token.encode()).decode(),
    ],
)
async def test_a_forged_session_token_is_refused(bench: Bench, forge: object) -> None:
    token, _ = await _login(bench, ADMIN)
    forged = forge(token)  # type: ignore[operator]
    async with bench.client(auth=None) as http:
        for method, path, body in WRITES[:2]:
            response = await http.request(method, path, json=body, headers={"X-Auth-Token": forged})
            _assert_redfish_error(response, 401, "NoValidSession")
    assert bench.unit.switch_log == []


async def test_a_closed_session_token_is_refused(bench: Bench) -> None:
    token, location = await _login(bench, ADMIN)
    async with bench.client(auth=None) as http:
        headers = {"X-Auth-Token": token}
        assert (await http.delete(location, headers=headers)).status_code == 204
        _assert_redfish_error(await http.get(SYSTEM, headers=headers), 401, "NoValidSession")


@pytest.mark.parametrize("path", READS)
async def test_401_without_credentials_on_every_route_class(bench: Bench, path: str) -> None:
    async with bench.client(auth=None) as http:
        _assert_redfish_error(await http.get(path), 401, "NoValidSession")


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_401_and_403_on_every_mutating_route_class(
    bench: Bench, method: str, path: str, body: dict[str, object]
) -> None:
    async with bench.client(auth=None) as anonymous:
        _assert_redfish_error(
            await anonymous.request(method, path, json=body), 401, "NoValidSession"
        )
    async with bench.client(READER) as reader:
        _assert_redfish_error(
            await reader.request(method, path, json=body), 403, "InsufficientPrivilege"
        )
        accounts = (await reader.get("/redfish/v1/AccountService/Accounts")).json()
        timeout = (await reader.get("/redfish/v1/SessionService")).json()["SessionTimeout"]
    assert "mallory" not in str(accounts)
    assert timeout == 1800
    assert bench.unit.switch_log == []
    assert bench.boot_select.source.value == "SDCard"


@pytest.mark.parametrize(
    "path",
    [
        "/redfish/v1/Systems/unit-9",
        "/redfish/v1/Chassis/unit-9/Sensors",
        f"/redfish/v1/Chassis/{UNIT}/Sensors/nope",
        "/redfish/v1/Managers/bmc2/NetworkProtocol",
        "/redfish/v1/AccountService/Accounts/nobody",
        "/redfish/v1/TaskService/Tasks/7",
        "/redfish/v1/UpdateService/FirmwareInventory/slot-c",
        f"{SYSTEM}/LogServices/Console/Entries/999999",
        "/redfish/v1/Nothing",
    ],
)
async def test_404_on_every_route_class(bench: Bench, path: str) -> None:
    async with bench.client() as http:
        _assert_redfish_error(await http.get(path), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", SYSTEM),
        ("PUT", SYSTEM),
        ("POST", "/redfish/v1/Systems"),
        ("GET", f"{SYSTEM}/Actions/ComputerSystem.Reset"),
        ("DELETE", "/redfish/v1/Managers/bmc/NetworkProtocol"),
        ("DELETE", "/redfish/v1/TaskService"),
        ("PATCH", "/redfish/v1/UpdateService/FirmwareInventory/slot-b"),
        ("GET", "/redfish/v1/UpdateService/update-multipart"),
    ],
)
async def test_405_names_the_allowed_methods(bench: Bench, method: str, path: str) -> None:
    async with bench.client() as http:
        response = await http.request(method, path)
        _assert_redfish_error(response, 405, "OperationNotAllowed")
        assert method not in response.headers["Allow"].split(", ")


async def test_412_on_a_stale_etag_or_an_unsupported_odata_version(bench: Bench) -> None:
    async with bench.client() as http:
        stale = await http.patch(
            SYSTEM,
            json={"Boot": {"BootSourceOverrideTarget": "Usb"}},
            headers={"If-Match": 'W/"0000000000000000"'},
        )
        _assert_redfish_error(stale, 412, "PreconditionFailed")
        account = "/redfish/v1/AccountService/Accounts/reader"
        stale_account = await http.patch(
            account, json={"RoleId": "Operator"}, headers={"If-Match": '"nope"'}
        )
        _assert_redfish_error(stale_account, 412, "PreconditionFailed")
        assert (await http.get(account)).json()["RoleId"] == "ReadOnly"
        odata = await http.get(SYSTEM, headers={"OData-Version": "5.0"})
        _assert_redfish_error(odata, 412, "HeaderInvalid")
    assert bench.boot_select.source.value == "SDCard"


def _ws_url(bench: Bench) -> str:
    return bench.url.replace("https://", "wss://") + f"{SYSTEM}/SerialConsole/WebSocket"


def _basic(who: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{who[0]}:{who[1]}".encode()).decode()}


async def test_the_serial_console_streams_over_a_websocket(bench: Bench) -> None:
    """Needs ``racklet.net.AppServer`` to serve WebSockets (it does: ws websockets-sansio)."""
    bench.uart.write(b"U-Boot 2025.01\n")
    context: ssl.SSLContext = client_context(bench.ca)
    async with connect(_ws_url(bench), ssl=context, additional_headers=_basic(ADMIN)) as ws:
        assert await asyncio.wait_for(ws.recv(), 10) == "U-Boot 2025.01"
        bench.uart.write(b"Starting kernel ...\r\nracklet login: ")
        assert await asyncio.wait_for(ws.recv(), 10) == "Starting kernel ..."
        bench.uart.write(b"\n")
        assert await asyncio.wait_for(ws.recv(), 10) == "racklet login: "


@pytest.mark.parametrize("who", [None, READER, ("admin", "wrong password")])
async def test_the_websocket_console_refuses_readers_and_strangers(
    bench: Bench, who: tuple[str, str] | None
) -> None:
    headers = _basic(who) if who else {}
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with connect(
            _ws_url(bench), ssl=client_context(bench.ca), additional_headers=headers
        ):
            pass
    assert refused.value.response.status_code == 403
    assert bench.service.context.console.watchers == 0
