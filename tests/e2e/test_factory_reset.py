"""Factory reset: new trust everywhere, old credentials dead, the rack back from its spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from racklet.net import client_context
from tests.e2e.conftest import RunningRack, phase, start_rack, stop_rack


def _running(units: dict[str, dict[str, object]]) -> bool:
    return phase(units, "unit-1") == "Running"


def test_factory_reset_replaces_trust_and_keeps_declared_state(small_rack: RunningRack) -> None:
    rack = small_rack
    rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "2/2 Running")
    rack.cli("power", "off", "unit-2")  # declared state the reset must keep
    rack.wait_for(lambda u: phase(u, "unit-2") == "Off", "unit-2 Off")
    before = rack.config
    old_ca = Path(rack.state_dir / "old-ca.crt")
    old_ca.write_bytes(Path(before["api"]["caBundle"]).read_bytes())
    old_root = (rack.state_dir / "boot" / "repo" / "metadata" / "root.json").read_bytes()
    viewer = rack.cli("token", "create", "--role", "viewer").stdout.strip()
    bmc_audit = rack.state_dir / "bmc" / "unit-2" / "audit.log"
    audited = bmc_audit.read_text()
    assert '"verb":"ComputerSystem.Reset"' in audited  # the power-off reached the BMC

    refused = rack.cli("reset", "--factory", check=False)  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr

    result = rack.cli("reset", "--factory", "--yes")
    assert "factory reset in" in result.stdout
    after = rack.config
    assert after["api"]["token"] != before["api"]["token"]
    assert (rack.state_dir / "boot" / "repo" / "metadata" / "root.json").read_bytes() != old_root
    new_unit = after["units"][0]["bmc"]

    # The old CA no longer vouches for the rack's API; the old token is refused.
    with pytest.raises(httpx.ConnectError):
        httpx.get(after["api"]["url"] + "/metrics", verify=client_context(old_ca))
    fresh_ca = client_context(after["api"]["caBundle"])
    response = httpx.get(
        after["api"]["url"] + "/api/v1/computeunits",
        headers={"Authorization": f"Bearer {before['api']['token']}"},
        verify=fresh_ca,
    )
    assert response.status_code == 401
    # So is every API token made before the reset; the BMC's audit log survived it.
    response = httpx.get(
        after["api"]["url"] + "/api/v1/computeunits",
        headers={"Authorization": f"Bearer {viewer}"},
        verify=fresh_ca,
    )
    assert response.status_code == 401
    assert bmc_audit.read_text().startswith(audited)
    # The old BMC password is dead too.
    old_password = before["units"][0]["bmc"]["password"]
    assert old_password != new_unit["password"]
    response = httpx.get(
        new_unit["url"] + "/redfish/v1/Systems/unit-1",
        auth=(new_unit["username"], old_password),
        verify=fresh_ca,
    )
    assert response.status_code == 401

    # Re-provisioned from the declared state: unit-1 boots again, unit-2 stays off.
    units = rack.wait_for(_running, "unit-1 Running after the reset")
    assert units["unit-2"]["spec"]["power"] == "Off"
    assert phase(units, "unit-2") == "Off"


def test_reset_without_a_rack_wipes_state(tmp_path: Path) -> None:
    rack = start_rack(tmp_path / "rack", "--units", "1", "--speed", "10")
    stop_rack(rack)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "racklet.cli",
            "--config",
            str(rack.config_path),
            "reset",
            "--factory",
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stdout
    assert not (rack.state_dir / "pki").exists()
    assert not rack.config_path.exists()
