"""A BMC firmware update of a running rack, as an operator does it: publish, roll out, check.

Real processes throughout (`racklet up`): the image is published with `racklet release
publish --channel bmc-firmware`, a Rollout is applied with `racklet apply`, the controller
pushes it through each BMC's Redfish UpdateService, each BMC try-boots and commits it, and
the BMCs themselves (Redfish `Managers/bmc`, FirmwareInventory) report the new version.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from racklet.bmc import build_manifest
from tests.e2e.conftest import RunningRack, phase

NEW = "0.2.0"


def _bmc_firmware(rack: RunningRack) -> dict[str, tuple[str, str | None]]:
    """Each BMC's running FirmwareVersion and its committed version (LowestSupportedVersion)."""
    config = rack.config
    found = {}
    for unit in config["units"]:
        bmc = unit["bmc"]
        with httpx.Client(
            base_url=bmc["url"],
            verify=ssl.create_default_context(cafile=config["api"]["caBundle"]),
            auth=(bmc["username"], bmc["password"]),
            timeout=10,
        ) as client:
            manager = client.get("/redfish/v1/Managers/bmc").raise_for_status().json()
            running = client.get("/redfish/v1/UpdateService/FirmwareInventory/bmc")
            floor = running.raise_for_status().json().get("LowestSupportedVersion")
        found[unit["name"]] = (manager["FirmwareVersion"], floor)
    return found


def test_a_bmc_firmware_rollout_updates_every_bmc_of_a_running_rack(
    small_rack: RunningRack, tmp_path: Path
) -> None:
    rack = small_rack
    rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "2/2 Running")
    before = _bmc_firmware(rack)
    assert all(version != NEW for version, _ in before.values()), before

    image = tmp_path / "bmc.img"
    image.write_bytes(build_manifest(NEW, b"racklet bmc firmware " * 256))
    published = rack.cli(
        "release", "publish", "--name", "racklet-bmc", "--version", NEW,
        "--channel", "bmc-firmware", str(image),
    ).stdout  # fmt: skip
    release = published.split()[0].removeprefix("release/")
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(
        "apiVersion: racklet.dev/v1alpha1\nkind: Rollout\n"
        f"metadata:\n  name: bmc-{NEW.replace('.', '-')}\n"
        f"spec:\n  release: {release}\n  canary: 1\n  batchSize: 1\n"
    )
    rack.cli("apply", "-f", str(manifest))
    name = f"rollout/bmc-{NEW.replace('.', '-')}"
    waited = rack.cli(
        "wait", name, "--for=jsonpath={.status.phase}=Complete", "--timeout=120s", check=False
    )
    assert waited.returncode == 0, (
        waited.stderr + rack.cli("describe", "rollout", name.split("/")[1]).stdout
    )

    after = _bmc_firmware(rack)
    assert after == {unit: (NEW, NEW) for unit in before}, after  # running and committed
    # the restarted BMCs answer again and their units are seen Running again
    rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "2/2 Running")
