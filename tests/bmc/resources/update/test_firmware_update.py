"""BMC firmware updates through Redfish, verified by TUF: an image is published on the rack's
``bmc-firmware`` channel, pushed with the metadata that vouches for it, and the BMC checks it
against the TUF root of its own ``trust.json`` (``racklet.bmc.TufImageVerifier``). A push
names no target: the verified image decides (BMC firmware goes to the standby slot), and an
image nothing vouches for is written nowhere."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.bmc import FIRMWARE_CHANNEL, TufImageVerifier, build_manifest, firmware_oem_parameters
from racklet.boot import TufRepository
from tests.bmc.conftest import Bench, FastClock, eventually, running_bench

SERVICE = "/redfish/v1/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
PUSH = f"{SERVICE}/update-multipart"
NAME = "racklet-bmc"


def _image(version: str) -> bytes:
    return build_manifest(version, f"racklet bmc firmware {version}\n".encode() * 2000)


def _repository(base: Path) -> TufRepository:
    return TufRepository.create(base, channels=("stable", FIRMWARE_CHANNEL))


def _publish(repo: TufRepository, version: str) -> tuple[str, bytes]:
    image = _image(version)
    release = repo.publish(FIRMWARE_CHANNEL, NAME, version, {"bmc.img": image})
    return release.files[0].target_path, image


def _push(image: bytes, oem: dict[str, Any]) -> dict[str, Any]:
    return {
        "files": {
            "UpdateParameters": (
                None,
                json.dumps({"@Redfish.OperationApplyTime": "OnReset"}),
                "application/json",
            ),
            "UpdateFile": ("bmc.img", image, "application/octet-stream"),
            "OemParameters": (None, json.dumps(oem), "application/json"),
        }
    }


@pytest.fixture
async def tuf_bench(tmp_path: Path) -> AsyncIterator[tuple[Bench, TufRepository]]:
    repo = _repository(tmp_path / "boot")
    state = tmp_path / "bmc" / "unit-1"
    async with running_bench(
        tmp_path, FastClock(), image_verifier=TufImageVerifier(state)
    ) as bench:
        assert bench.state_dir == state
        trust = json.loads((state / "trust.json").read_text())
        trust["tufRoot"] = repo.root_bytes().decode()
        (state / "trust.json").write_text(json.dumps(trust))
        yield bench, repo


async def _run(http: httpx.AsyncClient, image: bytes, oem: dict[str, Any]) -> dict[str, Any]:
    """Push, wait (bounded) for the task to end, return the task."""
    pushed = await http.post(PUSH, **_push(image, oem))
    assert pushed.status_code == 202, pushed.text
    monitor = pushed.headers["Location"]

    async def ended() -> bool:
        return (await http.get(monitor)).status_code != 202

    await eventually(ended, "the update task to end")
    return dict((await http.get(pushed.json()["@odata.id"])).json())


async def _standby(http: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await http.get(f"{INVENTORY}/bmc-standby")).json())


def _failure(task: dict[str, Any]) -> str:
    assert (task["TaskState"], task["TaskStatus"]) == ("Exception", "Critical")
    ids = [m["MessageId"] for m in task["Messages"]]
    assert "Update.1.3.VerificationFailed" in ids, ids
    return json.dumps(task["Messages"])


async def test_a_published_image_is_installed_in_the_inactive_slot(
    tuf_bench: tuple[Bench, TufRepository],
) -> None:
    bench, repo = tuf_bench
    target, image = _publish(repo, "1.2.0")
    async with bench.client() as http:
        task = await _run(http, image, firmware_oem_parameters(repo.metadata_dir, target))
        assert (task["TaskState"], task["TaskStatus"]) == ("Completed", "OK"), task
        slot = await _standby(http)
        assert (slot["Version"], slot["Status"]["State"]) == ("1.2.0", "StandbySpare")


async def test_a_tampered_image_fails_verification_and_nothing_is_installed(
    tuf_bench: tuple[Bench, TufRepository],
) -> None:
    bench, repo = tuf_bench
    target, image = _publish(repo, "1.2.0")
    tampered = image[:-1] + b"X"
    async with bench.client() as http:
        task = await _run(http, tampered, firmware_oem_parameters(repo.metadata_dir, target))
        assert "tampered" in _failure(task)
        assert (await _standby(http))["Status"]["State"] == "Absent"


async def test_an_image_signed_by_an_untrusted_repository_is_refused(
    tuf_bench: tuple[Bench, TufRepository], tmp_path: Path
) -> None:
    bench, _ = tuf_bench
    rogue = _repository(tmp_path / "rogue")
    target, image = _publish(rogue, "9.0.0")
    async with bench.client() as http:
        task = await _run(http, image, firmware_oem_parameters(rogue.metadata_dir, target))
        assert "trusted key" in _failure(task)
        assert (await _standby(http))["Status"]["State"] == "Absent"


async def test_verifying_an_image_raises_no_floor(
    tuf_bench: tuple[Bench, TufRepository],
) -> None:
    """Verification decides only whether an image is genuine. The rollback floor is the
    committed BMC firmware (``test_bmc_firmware_ab.py`` beside this file): a verified 2.0.0
    that was never committed must not refuse a validly signed 1.0.0."""
    bench, repo = tuf_bench
    old_target, old_image = _publish(repo, "1.0.0")
    new_target, new_image = _publish(repo, "2.0.0")
    async with bench.client() as http:
        task = await _run(http, new_image, firmware_oem_parameters(repo.metadata_dir, new_target))
        assert task["TaskState"] == "Completed", task
        task = await _run(http, old_image, firmware_oem_parameters(repo.metadata_dir, old_target))
        assert task["TaskState"] == "Completed", task
        assert (await _standby(http))["Version"] == "1.0.0"
    assert not (bench.state_dir / "firmware-floor").exists()


async def test_metadata_older_than_the_bmc_has_seen_is_refused(
    tuf_bench: tuple[Bench, TufRepository],
) -> None:
    bench, repo = tuf_bench
    target, image = _publish(repo, "1.0.0")
    stale = firmware_oem_parameters(repo.metadata_dir, target)
    repo.publish("stable", "racklet-os", "0.2.0", {"payload.bin": b"os"})  # metadata moves on
    async with bench.client() as http:
        task = await _run(http, image, firmware_oem_parameters(repo.metadata_dir, target))
        assert task["TaskState"] == "Completed", task
        # Same image, same version, but a replay of the older timestamp and snapshot.
        task = await _run(http, image, stale)
        assert "older than the BMC has seen" in _failure(task)


async def test_a_push_without_tuf_metadata_is_refused(
    tuf_bench: tuple[Bench, TufRepository],
) -> None:
    bench, repo = tuf_bench
    _, image = _publish(repo, "1.2.0")
    async with bench.client() as http:
        task = await _run(http, image, {"Racklet": {"TargetPath": "stable/x/1/y"}})
        assert "TargetPath and TufMetadata" in _failure(task)
