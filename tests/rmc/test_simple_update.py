"""``UpdateService.SimpleUpdate`` at the RMC, driven by DMTF's ``redfish_utilities`` as
``rf_update.py`` does: the RMC fetches a signed BMC firmware image from the rack's boot server
(the real boot app over mutual TLS, pinned to the controller's identity), with its TUF
metadata, and the unit's BMC verifies both through TUF as it does a pushed image. The RMC
fetches from nowhere else: another origin, plain HTTP, a path outside the firmware channel
are refused with a 400 before any connection, and an image the TUF repository did not sign
is refused by the BMC."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redfish_utilities
from starlette.applications import Starlette
from starlette.routing import Mount

import redfish
from racklet.bmc import FIRMWARE_CHANNEL, TufImageVerifier, build_manifest
from racklet.boot import TufRepository
from racklet.boot.server import create_boot_app
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from tests.rmc.conftest import ADMIN, READER, Rack, free_port, running_rack

INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
ACTION = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"
SLOT = f"{INVENTORY}/unit-1_bmc-standby"
"""Where BMC firmware goes: the standby slot of unit-1's BMC (tried at its next reset)."""


@dataclass
class Rig:
    rack: Rack
    repo: TufRepository
    boot_url: str
    hits: list[str]
    """Paths the boot server was asked for, in order."""

    def publish(self, version: str) -> str:
        """Publish a BMC firmware release; the URI of its image on the boot server."""
        image = build_manifest(version, f"bmc build {version}".encode() * 100)
        release = self.repo.publish(FIRMWARE_CHANNEL, "racklet-bmc", version, {"bmc.img": image})
        path = release.files[0].target_path
        folder, name = path.rsplit("/", 1)
        digest = hashlib.sha256(image).hexdigest()
        return f"{self.boot_url}/boot/v1/targets/{folder}/{digest}.{name}"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    repo = TufRepository.create(tmp_path / "boot", channels=("stable", FIRMWARE_CHANNEL))
    verifier_dir = tmp_path / "verifier"  # the BMCs' trust bundle: the rack's TUF root
    verifier_dir.mkdir()
    (verifier_dir / "trust.json").write_text(json.dumps({"tufRoot": repo.root_bytes().decode()}))
    port = free_port()
    boot_url = f"https://127.0.0.1:{port}"
    hits: list[str] = []
    # Mounted as the controller's machine listener mounts it.
    app = Starlette(routes=[Mount("/boot/v1", create_boot_app(repo.repo_dir))])

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hits.append(scope["path"])
        await app(scope, receive, send)

    async with running_rack(
        tmp_path / "rack",
        rmc_options={"update_origins": (boot_url,)},
        image_verifier=TufImageVerifier(verifier_dir),
    ) as rack:
        ca = RackCA.load(tmp_path / "rack" / "pki")
        key, crt = ca.issue("racklet-controller", role="controller").write(tmp_path, "boot")
        # The machine listener: mutual TLS, a client certificate of the rack CA required.
        server = AppServer(
            recorded,
            port=port,
            ssl_context=server_context(crt, key, ca=rack.ca),
            name="boot",
        )
        await server.start()
        try:
            yield Rig(rack, repo, boot_url, hits)
        finally:
            await server.stop()


def _simple_update(rack: Rack, uri: str, targets: list[str]) -> tuple[int, Any, dict[str, Any]]:
    """DMTF's redfish_utilities, as ``rf_update.py -i URI -t TARGET`` runs it, at the RMC;
    (the action's status, its answer, the slot once the task ended)."""
    context = redfish.redfish_client(
        base_url=rack.url, username=ADMIN[0], password=ADMIN[1], cafile=str(rack.ca)
    )
    context.login(auth="session")
    try:
        try:
            answer = redfish_utilities.simple_update(
                context,
                uri,
                "HTTPS",
                targets,
                apply_time=redfish_utilities.update.operation_apply_times.ON_RESET,
            )
        except redfish_utilities.messages.RedfishOperationFailedError as exc:
            return 400, str(exc), {}
        monitor = answer.getheader("Location")
        for _ in range(400):
            final = context.get(monitor)
            if final.status != 202:
                break
        return answer.status, final.dict, context.get(SLOT).dict
    finally:
        context.logout()


async def test_simple_update_fetches_a_signed_image_from_the_boot_server_only(rig: Rig) -> None:
    uri = rig.publish("0.3.0")
    status, task, slot = await asyncio.to_thread(_simple_update, rig.rack, uri, [SLOT])
    assert status == 202, task
    assert task["TaskState"] == "Completed", task
    assert slot["Version"] == "0.3.0"  # verified through TUF by unit-1's BMC, then written
    # The RMC read the metadata that vouches for the image, then the image itself.
    assert "/boot/v1/metadata/timestamp.json" in rig.hits
    assert rig.hits[-1] == uri.removeprefix(rig.boot_url)
    async with rig.rack.bmc("unit-2") as bmc:  # the other unit's BMC saw nothing
        other = (await bmc.get(f"{INVENTORY}/bmc-standby")).json()
    assert other.get("Version") != "0.3.0"


@pytest.mark.parametrize(
    "where",
    [
        "https://127.0.0.1:1/boot/v1/targets/bmc-firmware/racklet-bmc/0.3.0/bmc.img",
        "http://{boot}/boot/v1/targets/bmc-firmware/racklet-bmc/0.3.0/bmc.img",
        "https://{boot}/boot/v1/targets/stable/racklet/1.0.0/payload.bin",
        "https://{boot}/boot/v1/targets/bmc-firmware/../stable/racklet/1.0.0/payload.bin",
        "https://admin:pw@{boot}/boot/v1/targets/bmc-firmware/racklet-bmc/0.3.0/bmc.img",
        "https://{boot}/boot/v1/metadata/root.json",
        "https://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
async def test_an_image_uri_off_the_boot_server_is_refused_without_a_connection(
    rig: Rig, where: str
) -> None:
    uri = where.format(boot=rig.boot_url.removeprefix("https://"))
    async with httpx.AsyncClient(
        base_url=rig.rack.url, verify=client_context(rig.rack.ca), auth=ADMIN
    ) as http:
        answer = await http.post(
            ACTION, json={"ImageURI": uri, "TransferProtocol": "HTTPS", "Targets": [SLOT]}
        )
    assert answer.status_code == 400, answer.text
    info = answer.json()["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageId"].endswith("ActionParameterValueError")
    assert info["MessageArgs"][0] == "ImageURI"
    assert rig.hits == []  # nothing was fetched


async def test_bad_parameters_and_a_reader_are_refused(rig: Rig) -> None:
    uri = rig.publish("0.3.0")
    async with httpx.AsyncClient(
        base_url=rig.rack.url, verify=client_context(rig.rack.ca), auth=ADMIN
    ) as http:
        service = (await http.get("/redfish/v1/UpdateService")).json()
        action = service["Actions"]["#UpdateService.SimpleUpdate"]
        assert action["target"] == ACTION
        assert action["TransferProtocol@Redfish.AllowableValues"] == ["HTTPS"]
        refusals = {
            "ftp": {"ImageURI": uri, "TransferProtocol": "FTP", "Targets": [SLOT]},
            "credentials": {"ImageURI": uri, "Username": "u", "Password": "p", "Targets": [SLOT]},
            "no targets": {"ImageURI": uri},
            "two units": {
                "ImageURI": uri,
                "Targets": [SLOT, f"{INVENTORY}/unit-2_bmc-standby"],
            },
            "no uri": {"Targets": [SLOT]},
        }
        for why, body in refusals.items():
            answer = await http.post(ACTION, json=body)
            assert answer.status_code == 400, (why, answer.text)
    async with httpx.AsyncClient(
        base_url=rig.rack.url, verify=client_context(rig.rack.ca), auth=READER
    ) as http:
        answer = await http.post(ACTION, json={"ImageURI": uri, "Targets": [SLOT]})
    assert answer.status_code == 403
    assert rig.hits == []


async def test_an_image_the_repository_did_not_sign_is_refused_by_the_bmc(rig: Rig) -> None:
    """Bytes on the boot server under a firmware path but not a signed target: the BMC's TUF
    check refuses them, exactly as for a push (the RMC vouches for nothing)."""
    uri = rig.publish("0.3.0")
    forged = rig.repo.targets_dir / FIRMWARE_CHANNEL / "racklet-bmc" / "0.3.0" / "evil.img"
    forged.write_bytes(build_manifest("0.3.0", b"not what was signed"))
    uri = uri.rsplit("/", 1)[0] + "/evil.img"
    status, task, slot = await asyncio.to_thread(_simple_update, rig.rack, uri, [SLOT])
    assert status == 202, task
    # The task monitor answers with the BMC's refusal: Update.VerificationFailed.
    assert "VerificationFailed" in json.dumps(task), task
    assert slot.get("Version") != "0.3.0"
