"""UpdateService and TaskService: the firmware inventory, a multipart push of an image, and
the Task that verifies it and writes it into the unit's inactive slot. Verification is a seam
(``BmcSettings.image_verifier``); here it is a digest allow-list, the shape of a TUF targets
list: an image is genuine only if its SHA-256 is listed. The slots are the real
:class:`~racklet.bmc.UnitSlots` over a unit storage directory, whose A/B record says slot A
holds a committed 1.0.0 (``tests/redfish/test_os_update.py`` drives the whole path with TUF
and a real boot)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.bmc import ImageRejected, ImageUpload, VerifiedImage
from racklet.boot import PayloadManifest
from tests.bmc.conftest import READER, Bench, FastClock, eventually, running_bench

SERVICE = "/redfish/v1/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
PUSH = f"{SERVICE}/update-multipart"
TASKS = "/redfish/v1/TaskService/Tasks"
GOOD = b"racklet payload 2.0.0\n" * 1000


class DigestList:
    """Vouches for images whose SHA-256 it lists; ``gate`` (if set) holds verification."""

    def __init__(self, known: dict[bytes, VerifiedImage]) -> None:
        self._known = {hashlib.sha256(data).hexdigest(): image for data, image in known.items()}
        self.gate: threading.Event | None = None
        self.seen: list[Path] = []

    def __call__(self, upload: ImageUpload) -> VerifiedImage:
        self.seen.append(upload.path)
        if self.gate is not None:
            self.gate.wait(timeout=30)
        digest = hashlib.sha256(upload.path.read_bytes()).hexdigest()
        if digest not in self._known:
            raise ImageRejected(f"no target with sha256 {digest[:12]}... is listed")
        return self._known[digest]


def os_payload(data: bytes, version: str) -> VerifiedImage:
    """What a TUF verifier says of ``data`` signed as the unit OS release ``version``."""
    manifest = PayloadManifest(
        name="racklet-os",
        version=version,
        channel="stable",
        payload_path=f"stable/racklet-os/{version}/payload.bin",
        payload_length=len(data),
        payload_sha256=hashlib.sha256(data).hexdigest(),
    )
    return VerifiedImage("racklet-os", version, os_payload=manifest)


@pytest.fixture
def verifier() -> DigestList:
    return DigestList({GOOD: os_payload(GOOD, "2.0.0")})


@pytest.fixture
async def updating(tmp_path: Path, verifier: DigestList) -> AsyncIterator[Bench]:
    async with running_bench(
        tmp_path, FastClock(), image_verifier=verifier, unit_storage=tmp_path / "unit"
    ) as running:
        client = await running.link.connect()
        try:  # the unit's first install, committed as its bootstrap commits one
            await client.request("commit", slot="A", version="1.0.0", sha256="a" * 64)
        finally:
            await client.close()
        yield running


def _multipart(
    image: bytes, parameters: Any = None, filename: str = "payload.img"
) -> dict[str, Any]:
    params = json.dumps({} if parameters is None else parameters)
    return {
        "files": {
            "UpdateParameters": (None, params, "application/json"),
            "UpdateFile": (filename, image, "application/octet-stream"),
        }
    }


async def _finished(http: httpx.AsyncClient, monitor: str) -> httpx.Response:
    """Poll the task monitor (bounded) until it stops answering 202."""
    responses: list[httpx.Response] = []

    async def done() -> bool:
        responses.append(await http.get(monitor))
        return responses[-1].status_code != 202

    await eventually(done, "the update task to end")
    return responses[-1]


async def _slot(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await http.get(f"{INVENTORY}/{name}")
    assert response.status_code == 200
    return dict(response.json())


async def test_inventory_lists_the_bmc_firmware_and_both_boot_slots(bench: Bench) -> None:
    async with bench.client() as http:
        service = (await http.get(SERVICE)).json()
        assert service["MultipartHttpPushUri"] == PUSH
        assert service["FirmwareInventory"]["@odata.id"] == INVENTORY
        members = [m["@odata.id"] for m in (await http.get(INVENTORY)).json()["Members"]]
        assert members == [
            f"{INVENTORY}/{name}" for name in ("bmc", "bmc-standby", "slot-a", "slot-b")
        ]
        bmc = await _slot(http, "bmc")
        # Updateable through its standby slot; the running image itself is never written.
        assert (bmc["Version"], bmc["Updateable"], bmc["WriteProtected"]) == (
            "racklet-bmc test",
            True,
            True,
        )
        slot_a, slot_b = await _slot(http, "slot-a"), await _slot(http, "slot-b")
        assert slot_a["Status"]["State"] == "Enabled"
        assert slot_b["Status"]["State"] == "Absent"
        # This BMC cannot reach its unit's storage (StagedSlots): it writes no slot, and says so.
        assert (slot_a["Updateable"], slot_b["Updateable"]) == (False, False)
        assert (slot_a["WriteProtected"], slot_b["WriteProtected"]) == (True, True)
        manager = (await http.get("/redfish/v1/Managers/bmc")).json()
        assert manager["Links"]["ActiveSoftwareImage"]["@odata.id"] == f"{INVENTORY}/bmc"
        root = (await http.get("/redfish/v1/")).json()
        assert root["UpdateService"]["@odata.id"] == SERVICE
        assert root["Tasks"]["@odata.id"] == "/redfish/v1/TaskService"


async def test_a_verified_image_is_written_to_the_inactive_slot_by_a_task(
    updating: Bench, verifier: DigestList
) -> None:
    async with updating.client() as http:
        pushed = await http.post(PUSH, **_multipart(GOOD, {"Targets": [f"{INVENTORY}/slot-b"]}))
        assert pushed.status_code == 202, pushed.text
        monitor = pushed.headers["Location"]
        assert monitor == pushed.json()["TaskMonitor"]
        final = await _finished(http, monitor)
        assert final.status_code == 200
        task = (await http.get(pushed.json()["@odata.id"])).json()
        assert (task["TaskState"], task["TaskStatus"], task["PercentComplete"]) == (
            "Completed",
            "OK",
            100,
        )
        ids = [m["MessageId"] for m in task["Messages"]]
        assert "Update.1.3.UpdateSuccessful" in ids
        assert ids[-1] == "TaskEvent.1.0.TaskCompletedOK"
        slot_b = await _slot(http, "slot-b")
        assert (slot_b["Version"], slot_b["Status"]["State"]) == ("2.0.0", "StandbySpare")
        assert slot_b["Staged"] is True  # armed: the unit's next boot tries it
    written = updating.state_dir.parents[1] / "unit" / "slots" / "B" / "payload.bin"
    assert written.read_bytes() == GOOD
    assert written.stat().st_mode & 0o777 == 0o600
    # The upload the verifier read is gone: only the slot's copy stays.
    assert verifier.seen and not any(path.exists() for path in verifier.seen)


async def test_an_unlisted_image_fails_its_task_and_changes_nothing(
    updating: Bench, verifier: DigestList
) -> None:
    async with updating.client() as http:
        pushed = await http.post(PUSH, **_multipart(GOOD + b"tampered"))
        assert pushed.status_code == 202
        final = await _finished(http, pushed.headers["Location"])
        assert final.status_code == 400
        error = final.json()["error"]
        assert error["code"] == "Update.1.3.VerificationFailed"
        assert "no target with sha256" in error["@Message.ExtendedInfo"][0]["Resolution"]
        task = (await http.get(pushed.json()["@odata.id"])).json()
        assert (task["TaskState"], task["TaskStatus"]) == ("Exception", "Critical")
        assert task["Messages"][-1]["MessageId"] == "TaskEvent.1.0.TaskAborted"
        assert (await _slot(http, "slot-b"))["Status"]["State"] == "Absent"
    assert not (updating.state_dir.parents[1] / "unit" / "slots" / "B").exists()
    assert verifier.seen and not any(path.exists() for path in verifier.seen)


async def test_without_a_verifier_the_bmc_accepts_no_image(bench: Bench) -> None:
    async with bench.client() as http:
        pushed = await http.post(PUSH, **_multipart(GOOD))
        final = await _finished(http, pushed.headers["Location"])
        assert final.status_code == 400
        assert "no image verifier" in final.text
        assert (await _slot(http, "slot-b"))["Status"]["State"] == "Absent"


async def test_a_second_push_waits_for_the_running_update(
    updating: Bench, verifier: DigestList
) -> None:
    verifier.gate = threading.Event()
    async with updating.client() as http:
        try:
            first = await http.post(PUSH, **_multipart(GOOD))
            assert first.status_code == 202
            await eventually(lambda: bool(verifier.seen), "verification to start")
            running = await http.get(first.headers["Location"])
            assert running.status_code == 202
            assert running.json()["TaskState"] == "Running"
            second = await http.post(PUSH, **_multipart(GOOD))
            assert second.status_code == 503
            assert second.headers["Retry-After"] == "5"
        finally:
            verifier.gate.set()
        assert (await _finished(http, first.headers["Location"])).status_code == 200


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"json": {"UpdateFile": "x"}}, "Base.1.22.UnrecognizedRequestBody"),
        ({"files": {"UpdateFile": ("a.img", GOOD)}}, "Base.1.22.MissingOrMalformedPart"),
        (
            {"files": {"UpdateParameters": (None, "{}", "application/json")}},
            "Base.1.22.MissingOrMalformedPart",
        ),
        (
            {
                "files": {
                    "UpdateParameters": (None, "{not json", "application/json"),
                    "UpdateFile": ("a.img", GOOD),
                }
            },
            "Base.1.22.MalformedJSON",
        ),
        (
            _multipart(GOOD, {"Targets": [f"{INVENTORY}/slot-c"]}),
            "Base.1.22.PropertyValueNotInList",
        ),
        (_multipart(GOOD, {"Targets": "slot-b"}), "Base.1.22.PropertyValueTypeError"),
        (_multipart(GOOD, {"ForceUpdate": True}), "Base.1.22.PropertyUnknown"),
        (
            _multipart(GOOD, {"@Redfish.OperationApplyTime": "AtMaintenanceWindowStart"}),
            "Base.1.22.PropertyValueNotInList",
        ),
        (_multipart(b""), "Base.1.22.MissingOrMalformedPart"),
        (
            {
                "files": {
                    "UpdateParameters": (None, "{}", "application/json"),
                    "UpdateFile": ("a.img", GOOD),
                    "Extra": ("b.img", GOOD),
                }
            },
            "Base.1.22.MissingOrMalformedPart",
        ),
    ],
)
async def test_a_malformed_push_is_refused_before_any_task(
    updating: Bench, verifier: DigestList, request_kwargs: dict[str, Any], code: str
) -> None:
    async with updating.client() as http:
        response = await http.post(PUSH, **request_kwargs)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == code
        assert (await http.get(TASKS)).json()["Members@odata.count"] == 0
    assert not verifier.seen
    uploads = updating.state_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


async def test_a_read_only_account_cannot_push(updating: Bench, verifier: DigestList) -> None:
    async with updating.client(READER) as http:
        response = await http.post(PUSH, **_multipart(GOOD))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Base.1.22.InsufficientPrivilege"
        assert (await http.get(f"{INVENTORY}/slot-b")).json()["Status"]["State"] == "Absent"
    assert not verifier.seen


async def test_an_unknown_task_or_inventory_item_is_a_404(bench: Bench) -> None:
    async with bench.client() as http:
        for path in (f"{TASKS}/99", "/redfish/v1/TaskService/TaskMonitors/99", f"{INVENTORY}/x"):
            response = await http.get(path)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "Base.1.22.ResourceNotFound"


@pytest.mark.parametrize(("apply", "resets"), [("Immediate", 1), ("OnReset", 0)])
async def test_the_apply_time_decides_whether_a_running_unit_restarts_into_its_trial(
    updating: Bench, apply: str, resets: int
) -> None:
    updating.unit.on = True
    async with updating.client() as http:
        answer = await http.post(
            "/redfish/v1/Systems/unit-1/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        assert answer.status_code in (200, 204), answer.text
        # While its bootstrap runs, a push is refused: it may be writing that slot itself.
        refused = await http.post(PUSH, **_multipart(GOOD))
        assert (await _finished(http, refused.headers["Location"])).status_code == 409
        assert (await _slot(http, "slot-b"))["Status"]["State"] == "Absent"
        updating.service.context.boot.progress("OSRunning")  # as the unit's OS agent reports
        before = updating.unit.resets
        pushed = await http.post(
            PUSH,
            **_multipart(
                GOOD,
                {"Targets": [f"{INVENTORY}/slot-a"], "@Redfish.OperationApplyTime": apply},
            ),
        )
        assert (await _finished(http, pushed.headers["Location"])).status_code == 200
        slot_b = await _slot(http, "slot-b")
        assert (slot_b["Version"], slot_b["Staged"]) == ("2.0.0", True)  # slot-a named: B
    assert updating.unit.resets - before == resets
