"""The BMC's own firmware, A/B: a signed release is pushed over HTTPS to the standby slot,
try-booted by a real restart of the BMC (listener and service), and committed only when its
self-test passes; a trial whose self-test fails (the board's power monitor does not answer)
falls back by itself and does not raise the floor; a version below the committed one is
refused."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.bmc import (
    FIRMWARE_CHANNEL,
    BmcFirmwareSlots,
    BmcHost,
    BmcSettings,
    TufImageVerifier,
    build_manifest,
    firmware_oem_parameters,
)
from racklet.boot import TufRepository
from racklet.net import client_context, server_context
from tests.bmc.conftest import (
    ADMIN,
    UNIT,
    FakeUnit,
    FastClock,
    eventually,
    free_port,
    make_board,
    make_state_dir,
    running_bench,
)

INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
PUSH = "/redfish/v1/UpdateService/update-multipart"
MANAGER = "/redfish/v1/Managers/bmc"
STANDBY = f"{INVENTORY}/bmc-standby"
FACTORY = "0.1.0"


@dataclass
class Rig:
    host: BmcHost
    repo: TufRepository
    url: str
    ca: Path
    state_dir: Path
    unit: FakeUnit

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, verify=client_context(self.ca), auth=ADMIN, timeout=10.0
        )

    def publish(self, version: str) -> tuple[str, bytes]:
        image = build_manifest(version, f"bmc build {version}".encode() * 100)
        release = self.repo.publish(FIRMWARE_CHANNEL, "racklet-bmc", version, {"bmc.img": image})
        return release.files[0].target_path, image

    async def push(
        self, http: httpx.AsyncClient, version: str, apply: str, to: str = STANDBY
    ) -> Any:
        """Push a published release at ``to`` (the standby slot); the push's answer."""
        target, image = self.publish(version)
        oem = firmware_oem_parameters(self.repo.metadata_dir, target)
        parameters = {"Targets": [to], "@Redfish.OperationApplyTime": apply}
        pushed = await http.post(
            PUSH,
            files={
                "UpdateParameters": (None, json.dumps(parameters), "application/json"),
                "UpdateFile": ("bmc.img", image, "application/octet-stream"),
                "OemParameters": (None, json.dumps(oem), "application/json"),
            },
        )
        assert pushed.status_code == 202, pushed.text
        return pushed

    async def manager(self) -> dict[str, Any]:
        """The Manager resource, reconnecting while the BMC restarts (bounded by eventually)."""
        found: dict[str, Any] = {}

        async def answers() -> bool:
            try:
                async with self.client() as http:
                    found.update((await http.get(MANAGER)).json())
                    return True
            except httpx.TransportError:
                return False

        await eventually(answers, "the BMC to answer")
        return found

    async def settled(self, version: str) -> dict[str, Any]:
        """Wait (bounded) until the BMC runs ``version`` committed; its running inventory."""
        running: dict[str, Any] = {}

        async def there() -> bool:
            try:
                async with self.client() as http:
                    running.clear()
                    running.update((await http.get(f"{INVENTORY}/bmc")).json())
            except httpx.TransportError:
                return False
            # committed: the floor (LowestSupportedVersion) has reached the running version
            return running.get("Version") == version == running.get("LowestSupportedVersion")

        await eventually(there, f"the BMC to run {version} committed")
        return running


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    repo = TufRepository.create(tmp_path / "boot", channels=("stable", FIRMWARE_CHANNEL))
    state, ca = make_state_dir(tmp_path)
    trust = json.loads((state / "trust.json").read_text())
    trust["tufRoot"] = repo.root_bytes().decode()
    (state / "trust.json").write_text(json.dumps(trust))
    unit = FakeUnit()
    board, *_ = make_board(unit, FastClock())
    port = free_port()
    host = BmcHost(
        board,
        BmcSettings(
            unit=UNIT,
            state_dir=state,
            firmware_version=FACTORY,
            image_verifier=TufImageVerifier(state),
            self_test_deadline=5.0,
        ),
        port=port,
        ssl_context=functools.partial(server_context, state / "server.crt", state / "server.key"),
    )
    await host.start()
    try:
        yield Rig(host, repo, f"https://127.0.0.1:{port}", ca, state, unit)
    finally:
        await host.stop()


async def test_a_signed_release_is_try_booted_on_reset_and_committed(rig: Rig) -> None:
    first = rig.host.service
    async with rig.client() as http:
        pushed = await rig.push(http, "0.2.0", "OnReset")
        await eventually(lambda: _ended(http, pushed.headers["Location"]), "the update task to end")
        standby = (await http.get(STANDBY)).json()
        assert (standby["Version"], standby["Updateable"]) == ("0.2.0", True)
        assert (await http.get(MANAGER)).json()["FirmwareVersion"] == FACTORY, "not before reset"
        manager = (await http.get(MANAGER)).json()
        target = manager["Actions"]["#Manager.Reset"]["target"]
        reset = await http.post(target, json={"ResetType": "GracefulRestart"})
        assert reset.status_code == 204, reset.text
    running = await rig.settled("0.2.0")
    assert rig.host.restarts == 1 and rig.host.service is not first, "a real restart"
    assert running["Status"]["Health"] == "OK"
    manager = await rig.manager()
    assert manager["FirmwareVersion"] == "0.2.0"
    assert manager["Links"]["ActiveSoftwareImage"]["@odata.id"] == f"{INVENTORY}/bmc"
    async with rig.client() as http:
        standby = (await http.get(STANDBY)).json()
    # The old firmware stays in the other slot, which the next update overwrites.
    assert (standby["Version"], standby["Updateable"]) == (FACTORY, True)
    firmware = rig.state_dir / "bmc-firmware"
    for name in ("state.json", "slot-B.img"):
        assert (firmware / name).stat().st_mode & 0o777 == 0o600
    assert json.loads((firmware / "state.json").read_text())["committed"] == "B"


async def test_a_push_naming_the_running_bmc_firmware_updates_it_through_standby(
    rig: Rig,
) -> None:
    """``FirmwareInventory/bmc`` says ``Updateable: true``, and it is: a push naming it (as
    tools name the BMC they update) is written to the standby slot and tried at once."""
    async with rig.client() as http:
        running = (await http.get(f"{INVENTORY}/bmc")).json()
        assert (running["Updateable"], running["WriteProtected"]) == (True, True)
        pushed = await rig.push(http, "0.2.0", "Immediate", to=f"{INVENTORY}/bmc")
        task = pushed.headers["Location"]
        await eventually(lambda: _ended(http, task), "the update task to end")
    running = await rig.settled("0.2.0")
    assert rig.host.restarts == 1
    assert (await rig.manager())["FirmwareVersion"] == "0.2.0"


async def _fail_a_trial(rig: Rig, version: str) -> None:
    """Push ``version`` while the board's power monitor NACKs: the trial's hardware read
    really fails, and the BMC falls back (bounded wait)."""
    rig.unit.monitor_fails = True
    async with rig.client() as http:
        await rig.push(http, version, "Immediate")

    async def fell_back() -> bool:
        return rig.host.restarts == 2  # the try-boot, then the fallback

    await eventually(fell_back, "the BMC to try the new firmware and fall back")
    await rig.settled(FACTORY)


async def test_a_trial_that_fails_its_self_test_falls_back_by_itself(rig: Rig) -> None:
    await _fail_a_trial(rig, "0.3.0")
    async with rig.client() as http:
        standby = (await http.get(STANDBY)).json()
    assert standby["Version"] == "0.3.0"
    assert standby["Status"]["Health"] == "Critical"
    assert "self-test: the hardware backend does not read" in standby["Description"]
    assert "Remote I/O error" in standby["Description"], "the board's real error, not a flag"
    assert (await rig.manager())["FirmwareVersion"] == FACTORY


async def test_a_failed_trial_does_not_raise_the_floor(rig: Rig) -> None:
    """A 2.0.0 that failed its trial never committed: an older 1.5.0 that works is still
    accepted and commits (the floor rises on commit only)."""
    await _fail_a_trial(rig, "2.0.0")
    rig.unit.monitor_fails = False  # the board answers again
    async with rig.client() as http:
        pushed = await rig.push(http, "1.5.0", "Immediate")
        assert pushed.status_code == 202
    running = await rig.settled("1.5.0")
    assert running["LowestSupportedVersion"] == "1.5.0"
    assert rig.host.restarts == 3


async def test_a_lower_version_than_the_committed_one_is_refused(rig: Rig) -> None:
    async with rig.client() as http:
        await rig.push(http, "0.2.0", "Immediate")
    await rig.settled("0.2.0")
    target, image = rig.publish("0.1.5")
    oem = firmware_oem_parameters(rig.repo.metadata_dir, target)
    async with rig.client() as http:
        pushed = await http.post(
            PUSH,
            files={
                "UpdateParameters": (None, json.dumps({"Targets": [STANDBY]}), "application/json"),
                "UpdateFile": ("bmc.img", image, "application/octet-stream"),
                "OemParameters": (None, json.dumps(oem), "application/json"),
            },
        )
        monitor = pushed.headers["Location"]
        await eventually(lambda: _ended(http, monitor), "the update task to end")
        task = (await http.get(pushed.json()["@odata.id"])).json()
        assert task["TaskState"] == "Exception"
        assert "rollback refused" in json.dumps(task["Messages"])
        assert (await http.get(STANDBY)).json()["Version"] == FACTORY
    assert (await rig.manager())["FirmwareVersion"] == "0.2.0"


async def test_pushing_the_running_version_again_changes_nothing(rig: Rig) -> None:
    """A repeated push (a controller that took over cannot always tell whether its push
    arrived) completes without writing a slot or restarting the BMC again."""
    async with rig.client() as http:
        await rig.push(http, "0.2.0", "Immediate")
    await rig.settled("0.2.0")
    async with rig.client() as http:
        pushed = await rig.push(http, "0.2.0", "Immediate")
        await eventually(lambda: _ended(http, pushed.headers["Location"]), "the task to end")
        task = (await http.get(pushed.json()["@odata.id"])).json()
        assert (task["TaskState"], task["TaskStatus"]) == ("Completed", "OK"), task
        standby = (await http.get(STANDBY)).json()
    assert standby["Version"] == FACTORY, "the fall-back slot was not overwritten"
    assert rig.host.restarts == 1
    assert (await rig.settled("0.2.0"))["Status"]["Health"] == "OK"


async def test_a_bad_reset_type_is_a_redfish_error(rig: Rig) -> None:
    async with rig.client() as http:
        response = await http.post(
            f"{MANAGER}/Actions/Manager.Reset", json={"ResetType": "PowerCycle"}
        )
    assert response.status_code == 400
    assert "ActionParameterValueNotInList" in response.text
    assert rig.host.restarts == 0


def test_a_power_cut_during_the_try_boot_lands_on_the_committed_slot(tmp_path: Path) -> None:
    slots = BmcFirmwareSlots(tmp_path, FACTORY)
    slots.boot()
    image = tmp_path / "upload.img"
    image.write_bytes(build_manifest("0.2.0", b"x"))
    assert slots.install(image, "0.2.0") == "B"
    assert slots.arm_tryboot() == "B"
    assert slots.boot() == "B" and slots.trying == "B"  # the one-shot flag is consumed
    # Power is cut before the self-test commits: the next start runs the committed slot.
    again = BmcFirmwareSlots(tmp_path, FACTORY)
    assert again.boot() == "A"
    assert again.running_version == FACTORY
    assert again.failure("B") == "did not commit before the BMC restarted"
    assert again.arm_tryboot() is None, "a failed image is not tried again"


async def _ended(http: httpx.AsyncClient, monitor: str) -> bool:
    return (await http.get(monitor)).status_code != 202


async def test_without_a_host_the_bmc_restarts_itself_in_place(tmp_path: Path) -> None:
    repo = TufRepository.create(tmp_path / "boot", channels=("stable", FIRMWARE_CHANNEL))
    state = tmp_path / "bmc" / UNIT
    async with running_bench(
        tmp_path, FastClock(), image_verifier=TufImageVerifier(state), self_test_deadline=5.0
    ) as bench:
        trust = json.loads((state / "trust.json").read_text())
        trust["tufRoot"] = repo.root_bytes().decode()
        (state / "trust.json").write_text(json.dumps(trust))
        rig = Rig(None, repo, bench.url, bench.ca, state, FakeUnit())  # type: ignore[arg-type]
        async with rig.client() as http:
            await rig.push(http, "0.2.0", "Immediate")
        running = await rig.settled("0.2.0")
        assert running["Description"] == "running, slot B, committed"
        assert bench.service.context.firmware_version == "0.2.0"
