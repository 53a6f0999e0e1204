"""A unit's OS updated through its BMC's Redfish UpdateService, on a running rack.

Real processes throughout (``racklet up``): an OS release is signed with ``racklet release
publish`` (not made current: no unit boots it by itself), pushed with DMTF's ``redfish``
library as a multipart push naming the unit's *active* slot, with the TUF metadata that
vouches for it. The BMC verifies it against the unit's channel, writes it into the unit's
inactive slot and arms the trial; a ``ComputerSystem.Reset`` boots it through the bootstrap's
try-boot, the OS agent commits it, and the BMC's inventory, the A/B record and the
controller's unit status all say so. Payloads it must not accept (tampered, unsigned, below
the rollback floor) are refused with ``Update.VerificationFailed`` and write nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import redfish
from racklet.boot import build_default_payload
from racklet.wire import firmware_oem_parameters
from tests.e2e.conftest import RunningRack, phase, start_rack, stop_rack

INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
UNIT = "unit-1"
PAYLOAD_BYTES = 65536


@pytest.fixture(scope="module")
def os_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRack]:
    running = start_rack(tmp_path_factory.mktemp("rack"), "--units", "2", "--speed", "10")
    try:
        running.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "2/2 Running")
        yield running
    finally:
        stop_rack(running)


class Bmc:
    """unit-1's BMC through DMTF's ``redfish`` library, as an operator's script uses it."""

    def __init__(self, rack: RunningRack) -> None:
        self.rack = rack
        config = rack.config
        bmc = next(u for u in config["units"] if u["name"] == UNIT)["bmc"]
        self.context = redfish.redfish_client(
            base_url=bmc["url"],
            username=bmc["username"],
            password=bmc["password"],
            cafile=config["api"]["caBundle"],
        )
        self.context.login(auth="session")

    def close(self) -> None:
        self.context.logout()

    def slot(self, name: str) -> dict[str, Any]:
        return dict(self.context.get(f"{INVENTORY}/slot-{name}").dict)

    def push(self, payload: bytes, target_path: str, slot: str, apply: str) -> dict[str, Any]:
        """Push ``payload`` as ``target_path`` naming ``slot``; the task once it ended."""
        service = self.context.get("/redfish/v1/UpdateService").dict
        metadata = self.rack.state_dir / "boot" / "repo" / "metadata"
        parameters = {"Targets": [f"{INVENTORY}/slot-{slot}"], "@Redfish.OperationApplyTime": apply}
        oem = firmware_oem_parameters(metadata, target_path)
        answer = self.context.post(
            service["MultipartHttpPushUri"],
            body={
                "UpdateParameters": (None, json.dumps(parameters), "application/json"),
                "UpdateFile": ("payload.bin", payload, "application/octet-stream"),
                "OemParameters": (None, json.dumps(oem), "application/json"),
            },
            headers={"Content-Type": "multipart/form-data"},
        )
        assert answer.status == 202, answer.text
        monitor = answer.getheader("Location")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.context.get(monitor).status == 202:
            time.sleep(0.2)
        return dict(self.context.get(answer.dict["@odata.id"]).dict)

    def reset(self) -> None:
        answer = self.context.post(
            f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset",
            body={"ResetType": "ForceRestart"},
        )
        assert answer.status in (200, 202, 204), answer.text


@pytest.fixture
def bmc(os_rack: RunningRack) -> Iterator[Bmc]:
    client = Bmc(os_rack)
    try:
        yield client
    finally:
        client.close()


def _publish(rack: RunningRack, tmp_path: Path, version: str) -> tuple[str, bytes]:
    """Sign an OS release on the unit's channel without making it current."""
    payload = build_default_payload(PAYLOAD_BYTES, version)
    (tmp_path / "payload.bin").write_bytes(payload)
    rack.cli(
        "release", "publish", "--name", "racklet-os", "--version", version,
        str(tmp_path / "payload.bin"),
    )  # fmt: skip
    return f"stable/racklet-os/{version}/payload.bin", payload


def _slots(rack: RunningRack) -> dict[str, str]:
    """What the unit's storage holds: each slot's record (where its bootstrap keeps them)."""
    slots = rack.state_dir / "units" / UNIT / "slots"
    return {p.parent.name: p.read_text() for p in sorted(slots.glob("*/slot.json"))}


def _ab(rack: RunningRack) -> dict[str, Any]:
    return dict(json.loads((rack.state_dir / "bmc" / UNIT / "ab.json").read_text()))


def _refused(task: dict[str, Any]) -> str:
    assert (task["TaskState"], task["TaskStatus"]) == ("Exception", "Critical"), task
    ids = [m["MessageId"] for m in task["Messages"]]
    assert "Update.1.3.VerificationFailed" in ids, ids
    return json.dumps(task["Messages"])


def test_a_signed_os_payload_pushed_at_the_active_slot_boots_after_a_reset(
    os_rack: RunningRack, bmc: Bmc, tmp_path: Path
) -> None:
    rack = os_rack
    running = bmc.slot("a")
    assert (running["Active"], running["Updateable"], running["WriteProtected"]) == (
        True,
        True,
        True,
    )
    assert bmc.slot("b")["Updateable"] is True
    before = rack.units()[UNIT]["status"]["osVersion"]
    target, payload = _publish(rack, tmp_path, "0.2.0")

    task = bmc.push(payload, target, "a", "OnReset")  # the active slot: written through B
    assert (task["TaskState"], task["TaskStatus"]) == ("Completed", "OK"), task
    staged = bmc.slot("b")
    assert (staged["Version"], staged["Staged"], staged["Active"]) == ("0.2.0", True, False)
    assert _ab(rack)["trying"]["version"] == "0.2.0" and _ab(rack)["tryboot"] is True
    assert rack.units()[UNIT]["status"]["osVersion"] == before  # nothing runs it yet

    bmc.reset()
    rack.wait_for(
        lambda u: phase(u, UNIT) == "Running" and u[UNIT]["status"].get("osVersion") == "0.2.0",
        f"{UNIT} Running 0.2.0",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _ab(rack)["committed"]["slot"] != "B":
        time.sleep(0.5)
    ab = _ab(rack)
    assert (ab["committed"]["slot"], ab["committed"]["version"]) == ("B", "0.2.0"), ab
    assert ab["rollbackVersion"] == "0.2.0" and ab["trying"] is None
    now = bmc.slot("b")
    assert (now["Active"], now["WriteProtected"], now["LowestSupportedVersion"]) == (
        True,
        True,
        "0.2.0",
    )
    assert bmc.slot("a")["WriteProtected"] is False  # the inactive one now
    console = rack.cli("console", UNIT).stdout
    assert "try-boot of slot B (0.2.0)" in console


@pytest.mark.parametrize("kind", ["tampered", "unsigned", "below the floor"])
def test_a_payload_the_unit_must_not_boot_is_refused_and_nothing_is_written(
    os_rack: RunningRack, bmc: Bmc, tmp_path: Path, kind: str
) -> None:
    rack = os_rack
    if kind == "tampered":
        target, payload = _publish(rack, tmp_path, "0.3.0")
        payload = payload[:-1] + bytes([payload[-1] ^ 1])
        expected = "length or hash mismatch"
    elif kind == "unsigned":
        target = "stable/racklet-os/9.9.9/payload.bin"  # never published
        payload = build_default_payload(PAYLOAD_BYTES, "9.9.9")
        expected = "is not a target signed for stable"
    else:
        target, payload = _publish(rack, tmp_path, "0.0.1")  # signed, but below any commit
        expected = "rollback protection"
    slots, ab = _slots(rack), _ab(rack)
    task = bmc.push(payload, target, "b", "OnReset")
    assert expected in _refused(task)
    assert _slots(rack) == slots and _ab(rack) == ab  # nothing written, nothing armed
