"""A rack keeps its addresses: ``racklet up`` reuses the ports racklet.yaml recorded.

The BMC URLs end up in Git (``racklet init gitops``), so a restart that moved them would
leave the GitOps-declared units pointing at nothing. These tests run the real ``prepare`` and
the real ``racklet up``; the last one restarts a whole rack managed from a Git repository.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from racklet.cli._ports import recorded
from racklet.cli._prepare import peer_config_path, prepare
from racklet.cli.main import main
from racklet.config import RackConfig, load
from racklet.errors import ConfigError
from tests.e2e.conftest import RunningRack, phase, start_rack, stop_rack

SETTINGS: dict[str, Any] = {
    "speed": 1.0,
    "profile": "raspberry-pi-4",
    "psu_rated_watts": 100.0,
    "payload_bytes": 4096,
}


def _prepare(state_dir: Path, units: int, **extra: Any) -> RackConfig:
    return prepare(state_dir, units=units, **SETTINGS, **extra)


def test_a_restart_keeps_every_port_and_a_fresh_dir_picks_new_ones(tmp_path: Path) -> None:
    first = recorded(_prepare(tmp_path / "a", 3))
    # api/machine/bulk, per unit: BMC (switch side and its own), agent, switch ports to the
    # machine and bulk listeners; the rmc and the control endpoint
    assert len(set(first.values())) == len(first) == 3 + 5 * 3 + 2
    assert recorded(_prepare(tmp_path / "a", 3)) == first
    assert recorded(load(tmp_path / "a" / "racklet.yaml")) == first
    other = recorded(_prepare(tmp_path / "b", 3))
    # free ports the OS picked anew, not a copy of another rack's record: two draws of twenty
    # from the ephemeral range may share a port or two (a CI run had one), never most of them
    assert len(set(other.values()) & set(first.values())) <= 2


def test_added_units_get_new_ports_and_the_others_keep_theirs(tmp_path: Path) -> None:
    two = recorded(_prepare(tmp_path, 2))
    three = recorded(_prepare(tmp_path, 3))
    assert {role: three[role] for role in two} == two
    added = {three["bmc:unit-3"], three["agent:unit-3"]}
    assert added.isdisjoint(two.values()) and len(added) == 2
    assert recorded(_prepare(tmp_path, 2)) == two  # unit-3 removed; nothing else moves


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _up(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "racklet.cli", "up", "--state-dir", str(state_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_taken_port_stops_racklet_up_with_one_line_naming_port_and_holder(
    tmp_path: Path,
) -> None:
    config = _prepare(tmp_path, 2)
    bmc_port = recorded(config)["bmc:unit-2"]
    before = (tmp_path / "racklet.yaml").read_text()
    with _listen(bmc_port):
        result = _up(tmp_path, "--units", "2")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {bmc_port} (the BMC of unit-2)" in lines[0]
    assert "pytest" in lines[0] or "python" in lines[0]  # the holder: this test's process
    assert "--reassign-ports" in lines[0]
    assert (tmp_path / "racklet.yaml").read_text() == before  # nothing moved silently


def test_reassign_ports_gives_the_rack_new_addresses(tmp_path: Path) -> None:
    old = recorded(_prepare(tmp_path, 2))
    with _listen(old["api"]):
        with pytest.raises(ConfigError, match=f"port {old['api']} \\(the API\\)"):
            _prepare(tmp_path, 2)
        new = recorded(_prepare(tmp_path, 2, reassign_ports=True))
    assert new["api"] != old["api"]
    assert recorded(load(tmp_path / "racklet.yaml")) == new


def test_a_broken_racklet_yaml_is_not_overwritten_silently(tmp_path: Path) -> None:
    _prepare(tmp_path, 1)
    (tmp_path / "racklet.yaml").write_text("units: [")
    with pytest.raises(ConfigError, match="--reassign-ports"):
        _prepare(tmp_path, 1)
    assert recorded(_prepare(tmp_path, 1, reassign_ports=True))["api"] > 0


def test_more_controllers_need_etcd_and_each_gets_its_own_ports_and_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--state-dir", str(tmp_path), "--controllers", "2"]) == 2
    assert "--store etcd://HOST:PORT" in capsys.readouterr().err
    config = _prepare(tmp_path, 1, store="etcd://127.0.0.1:2379", controllers=2)
    ports = recorded(config)
    # the unit's switch ports: to machine, bulk and controller-2's machine listener; rmc, control
    assert len(set(ports.values())) == len(ports) == 3 + 3 + 3 + 2 + 2
    peer = load(peer_config_path(config.layout, 2))
    assert peer.state_dir == config.state_dir  # same rack, same secrets
    assert peer.api.url == f"https://127.0.0.1:{ports['api:controller-2']}"
    assert peer.controller.machine_port == ports["machine:controller-2"]
    assert peer.units == config.units
    again = _prepare(tmp_path, 1, store="etcd://127.0.0.1:2379", controllers=2)
    assert recorded(again) == ports


# -- a whole rack, managed from Git, restarted ------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _source(rack: RunningRack) -> dict[str, Any]:
    status: dict[str, Any] = (
        json.loads(rack.cli("get", "gitsource", "rack", "-o", "json").stdout).get("status") or {}
    )
    return status


def _wait_applied(rack: RunningRack, commit: str) -> None:
    deadline = time.monotonic() + 30
    while (status := _source(rack)).get("lastAppliedCommit") != commit:
        assert time.monotonic() < deadline, status
        time.sleep(0.3)


def test_gitops_declared_units_run_again_after_a_restart(tmp_path: Path) -> None:
    state, repo = tmp_path / "rack", tmp_path / "class-rack"
    rack = start_rack(state, "--units", "2", "--speed", "10")
    try:
        before = rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "2/2 Running")
        rack.cli("init", "gitops", str(repo))
        rack.cli("apply", "-f", str(repo / "gitsource.yaml"))
        _wait_applied(rack, _git(repo, "rev-parse", "HEAD"))
        after = rack.units()
        for name, unit in after.items():
            assert unit["metadata"]["labels"]["racklet.dev/gitsource"] == "rack"
            manifest = yaml.safe_load((repo / "rack" / "units" / f"{name}.yaml").read_text())
            # what init wrote agrees with what up declared: the first sync changed no spec
            assert unit["spec"] == manifest["spec"]
            assert unit["metadata"]["generation"] == before[name]["metadata"]["generation"]
        urls = {u["name"]: u["bmc"]["url"] for u in rack.config["units"]}
    finally:
        stop_rack(rack)

    rack = start_rack(state, "--units", "2", "--speed", "10")
    try:
        assert {u["name"]: u["bmc"]["url"] for u in rack.config["units"]} == urls
        units = rack.wait_for(
            lambda u: all(phase(u, n) == "Running" for n in u), "2/2 Running after the restart"
        )
        for name, unit in units.items():
            assert unit["spec"]["bmc"]["url"] == urls[name]
            assert unit["metadata"]["labels"]["racklet.dev/gitsource"] == "rack"  # Git owns it
        assert _source(rack).get("lastAppliedCommit") == _git(repo, "rev-parse", "HEAD")
    finally:
        stop_rack(rack)


@pytest.mark.parametrize("flag", ["--uplink-mbps", "--port-mbps"])
@pytest.mark.parametrize("value", ["0", "fast", "-5", "200000"])
def test_a_bad_link_rate_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    assert main(["up", "--state-dir", str(tmp_path), f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "racklet.yaml").exists(), "nothing was prepared"


def test_the_link_rates_reach_the_config(tmp_path: Path) -> None:
    config = _prepare(tmp_path, 1, uplink_bandwidth_bps=200e6, port_bandwidth_bps=100e6)
    assert config.switch is not None and config.switch.uplink_bandwidth_bps == 200e6
    assert config.switch.port_bandwidth_bps == 100e6
    assert load(tmp_path / "racklet.yaml").switch == config.switch
