"""The audit trail of the hardware side: each BMC and the RMC write their own audit.log.

Real BMC services on twin boards and the RMC in front of them, over HTTPS: a Redfish POST to
a BMC and one to the RMC each leave one structured line; a refused one is recorded as refused;
a request the RMC forwards carries its request id to the BMC, so the two lines share it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.rmc.conftest import ADMIN, READER, Rack, eventually

RESET = "/redfish/v1/Systems/{}/Actions/ComputerSystem.Reset"


def _root(rack: Rack) -> Path:
    return rack.ca.parent.parent


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def settled(path: Path, count: int) -> list[dict[str, Any]]:
    """The file's lines once it has ``count`` of them (the writer thread appends soon after)."""
    await eventually(lambda: len(read(path)) >= count, f"{count} lines in {path}")
    return read(path)


async def test_a_redfish_post_to_a_bmc_leaves_one_line(rack: Rack) -> None:
    bmc_log = _root(rack) / "bmc" / "unit-1" / "audit.log"
    async with rack.bmc("unit-1") as bmc:
        assert (await bmc.get("/redfish/v1/Systems/unit-1")).status_code == 200
        answer = await bmc.post(RESET.format("unit-1"), json={"ResetType": "On"})
        assert answer.status_code < 300, answer.text
    [line] = await settled(bmc_log, 1)
    assert line["component"] == "bmc/unit-1"
    assert (line["principal"], line["role"]) == ("admin", "Administrator")
    assert line["source"].startswith("127.0.0.1:")
    assert (line["verb"], line["object"]) == ("ComputerSystem.Reset", "/redfish/v1/Systems/unit-1")
    assert (line["outcome"], line["status"]) == ("succeeded", answer.status_code)
    assert line["requestId"] == answer.headers["x-request-id"]
    assert os.stat(bmc_log).st_mode & 0o777 == 0o600
    assert read(_root(rack) / "bmc" / "unit-2" / "audit.log") == []  # each BMC its own file


async def test_a_post_through_the_rmc_leaves_a_line_on_both_with_one_request_id(
    rack: Rack,
) -> None:
    rmc_log = _root(rack) / "rmc" / "audit.log"
    bmc_log = _root(rack) / "bmc" / "unit-2" / "audit.log"
    async with rack.client(ADMIN) as client:
        answer = await client.post(RESET.format("unit-2_unit-2"), json={"ResetType": "On"})
    assert answer.status_code < 300, answer.text
    [rmc_line] = await settled(rmc_log, 1)
    [bmc_line] = await settled(bmc_log, 1)  # the RMC logs in with its certificate: no session
    assert rmc_line["component"] == "rmc"
    assert (rmc_line["principal"], rmc_line["role"]) == (ADMIN[0], "Administrator")
    assert rmc_line["object"] == "/redfish/v1/Systems/unit-2_unit-2"
    assert rmc_line["verb"] == "ComputerSystem.Reset" and rmc_line["outcome"] == "succeeded"
    # The BMC saw the RMC's own identity, acting for the caller the RMC's line names.
    assert bmc_line["principal"] == "spiffe://rack-1/rmc", bmc_line
    assert bmc_line["object"] == "/redfish/v1/Systems/unit-2"
    assert bmc_line["requestId"] == rmc_line["requestId"] == answer.headers["x-request-id"]


async def test_refused_requests_are_recorded_as_refused(rack: Rack) -> None:
    rmc_log = _root(rack) / "rmc" / "audit.log"
    bmc_log = _root(rack) / "bmc" / "unit-1" / "audit.log"
    async with rack.client(READER) as reader:
        denied = await reader.post(RESET.format("unit-1_unit-1"), json={"ResetType": "On"})
    async with rack.client(("admin", "not the password")) as stranger:
        await stranger.post(RESET.format("unit-1_unit-1"), json={"ResetType": "On"})
    assert denied.status_code == 403
    forbidden, unauthenticated = await settled(rmc_log, 2)
    assert (forbidden["principal"], forbidden["role"]) == (READER[0], "ReadOnly")
    assert (forbidden["outcome"], forbidden["status"]) == ("refused", 403)
    assert forbidden["message"]
    assert (unauthenticated["principal"], unauthenticated["outcome"]) == (None, "refused")
    assert unauthenticated["status"] == 401
    assert read(bmc_log) == []  # nothing reached the BMC
    async with rack.bmc("unit-1") as bmc:
        bmc.auth = None
        anonymous = await bmc.patch("/redfish/v1/Systems/unit-1", json={"AssetTag": "x"})
    assert anonymous.status_code == 401
    [line] = await settled(bmc_log, 1)
    assert (line["verb"], line["outcome"], line["principal"]) == ("PATCH", "refused", None)


async def test_a_login_names_who_logged_in(rack: Rack) -> None:
    rmc_log = _root(rack) / "rmc" / "audit.log"
    async with rack.client(auth=None) as client:
        body = {"UserName": READER[0], "Password": READER[1]}
        assert (await client.post("/redfish/v1/SessionService/Sessions", json=body)).is_success
        body["Password"] = "wrong"
        assert (
            await client.post("/redfish/v1/SessionService/Sessions", json=body)
        ).status_code == 401
    ok, failed = await settled(rmc_log, 2)
    assert (ok["principal"], ok["verb"], ok["outcome"]) == (READER[0], "POST", "succeeded")
    assert (failed["principal"], failed["outcome"]) == (None, "refused")
