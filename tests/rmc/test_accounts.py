"""The RMC's logins: its own certificate at the BMCs, the BMC's account code at home.

An attacker here is another loopback address (127.0.0.2): its failed logins must slow it and
lock it out, and nobody else.
"""

from __future__ import annotations

import asyncio

import httpx

from racklet.net import client_context
from tests.rmc.conftest import ADMIN, OPERATOR, Rack

SESSIONS = "/redfish/v1/SessionService/Sessions"
EVENTS = "LogServices/EventLog/Entries"


def attacker(base_url: str, rack: Rack) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(verify=client_context(rack.ca), local_address="127.0.0.2")
    return httpx.AsyncClient(base_url=base_url, transport=transport)


async def guess(client: httpx.AsyncClient, username: str, times: int) -> list[httpx.Response]:
    """``times`` wrong logins, ten at a time, as a scripted attacker sends them."""
    answers: list[httpx.Response] = []
    for start in range(0, times, 10):
        batch = [
            client.post(SESSIONS, json={"UserName": username, "Password": "guess"})
            for _ in range(min(10, times - start))
        ]
        answers += await asyncio.gather(*batch)
    return answers


async def test_fifty_wrong_logins_at_a_bmc_do_not_cut_the_rmc_off(rack: Rack) -> None:
    async with attacker(rack.bmc_urls["unit-1"], rack) as mallory:
        answers = await guess(mallory, "admin", 50)
    refused = [a for a in answers if a.status_code == 503]
    assert {a.status_code for a in answers} <= {401, 503}
    # Retry-After counts down the 60 s lock-out: a busy machine may take a second or more
    # over the fifty guesses.
    waits = {int(a.headers["Retry-After"]) for a in refused}
    assert len(refused) >= 30 and waits <= set(range(50, 61)), waits
    async with rack.client() as client:
        systems = (await client.get("/redfish/v1/Systems")).json()
        unit = await client.get("/redfish/v1/Systems/unit-1_unit-1")
    assert "/redfish/v1/Systems/unit-1_unit-1" in [m["@odata.id"] for m in systems["Members"]]
    assert unit.status_code == 200, "the RMC's certificate is not a password to lock"
    async with rack.bmc("unit-1") as bmc:  # the BMC admin, from another address
        admin = (await bmc.get("/redfish/v1/AccountService/Accounts/admin")).json()
        sessions = (await bmc.get(SESSIONS)).json()
        events = (await bmc.get(f"/redfish/v1/Managers/bmc/{EVENTS}")).json()
    assert admin["Locked"] is True
    assert sessions["Members"] == [], "the RMC opened no session with a BMC password"
    ids = [e["MessageId"] for e in events["Members"]]
    assert "AccountSecurity.1.0.AccountLocked" in ids


async def test_the_rmc_throttles_and_locks_its_own_logins_per_source(rack: Rack) -> None:
    async with attacker(rack.url, rack) as mallory:
        answers = await guess(mallory, OPERATOR[0], 30)
        right = await mallory.post(
            SESSIONS, json={"UserName": OPERATOR[0], "Password": OPERATOR[1]}
        )
    assert {a.status_code for a in answers} <= {401, 503}
    assert [a.status_code for a in answers].count(503) >= 10, "the guessing source is slowed"
    assert right.status_code in (401, 503), "locked for that source: even the right password"
    assert rack.rmc.accounts.throttle.delay("127.0.0.2") == 60.0
    assert rack.rmc.accounts.throttle.delay("127.0.0.1") == 0.0
    async with rack.client(auth=OPERATOR) as operator:  # the operator, from elsewhere
        assert (await operator.get("/redfish/v1/Systems")).status_code == 200
    async with rack.client() as admin:
        account = (await admin.get(f"/redfish/v1/AccountService/Accounts/{OPERATOR[0]}")).json()
        events = (await admin.get(f"/redfish/v1/Managers/rmc/{EVENTS}")).json()
        unlocked = await admin.patch(
            f"/redfish/v1/AccountService/Accounts/{OPERATOR[0]}", json={"Locked": False}
        )
    assert account["Locked"] is True
    found = [(e["MessageId"], e["MessageArgs"][0]) for e in events["Members"]]
    assert ("AccountSecurity.1.0.InvalidCredentials", OPERATOR[0]) in found
    assert ("AccountSecurity.1.0.AccountLocked", OPERATOR[0]) in found
    assert unlocked.status_code == 200 and unlocked.json()["Locked"] is False


async def test_an_rmc_operator_cannot_reach_what_the_bmc_privilege_map_denies(
    rack: Rack,
) -> None:
    async with rack.client(auth=OPERATOR) as operator:
        manager = await operator.patch(
            "/redfish/v1/Managers/unit-1_bmc", json={"DateTimeLocalOffset": "+01:00"}
        )
        accounts = await operator.get("/redfish/v1/AccountService/Accounts")
    assert manager.status_code == 403, "managing a BMC needs ConfigureManager, not Operator"
    assert [m["@odata.id"] for m in accounts.json()["Members"]] == [
        f"/redfish/v1/AccountService/Accounts/{OPERATOR[0]}"
    ], "an operator sees only its own account"
    async with rack.client(auth=ADMIN) as admin:
        everyone = (await admin.get("/redfish/v1/AccountService/Accounts")).json()
    assert len(everyone["Members"]) == 3
