"""Every CLI error path: one clear line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from racklet.config import (
    ApiConfig,
    BmcConfig,
    ControllerConfig,
    RackConfig,
    RackSettings,
    UnitConfig,
    save,
)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "racklet.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("racklet: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def _dead_rack_config(tmp_path: Path) -> Path:
    """A config whose API port has nothing listening (the rack was stopped)."""
    config = RackConfig(
        stateDir=str(tmp_path),
        rack=RackSettings(units=2),
        api=ApiConfig(url="https://127.0.0.1:9", caBundle=str(tmp_path / "ca.crt"), token="t"),
        controller=ControllerConfig(apiPort=9, machinePort=9),
        units=[
            UnitConfig(
                name=f"unit-{i}",
                slot=i,
                bmc=BmcConfig(url="https://127.0.0.1:9", username="admin", password="p"),
                agentPort=9,
            )
            for i in (1, 2)
        ],
    )
    from racklet.pki import RackCA

    RackCA.create(tmp_path)
    return save(config)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("abc", "whole number"),
        ("0", "between 1 and 16"),
        ("17", "between 1 and 16"),
        ("2.5", "whole"),
    ],
)
def test_malformed_or_out_of_range_units(tmp_path: Path, value: str, needle: str) -> None:
    result = run_cli("up", "--units", value, "--state-dir", str(tmp_path / "s"))
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "s").exists(), "a rejected command must not create state"


def test_bad_speed(tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("up", "--speed", "-1", "--state-dir", str(tmp_path)), 2, "--speed"
    )


def test_state_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli("up", "--state-dir", str(blocker / "state"))
    assert_one_line_error(result, 1, "not writable", str(blocker / "state"))


def test_no_rack_running_without_config(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = run_cli("get", "units", env=env, cwd=tmp_path)
    assert_one_line_error(result, 1, "no running rack", "racklet up")


def test_no_rack_answering(tmp_path: Path) -> None:
    path = _dead_rack_config(tmp_path)
    result = run_cli("--config", str(path), "get", "units")
    assert_one_line_error(result, 1, "no rack answers", "racklet up")


def test_config_from_environment(tmp_path: Path) -> None:
    path = _dead_rack_config(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RACKLET_CONFIG": str(path)}
    result = run_cli("get", "units", env=env, cwd=tmp_path)
    assert_one_line_error(result, 1, "no rack answers")


@pytest.mark.parametrize(
    "args",
    [
        ("describe", "unit", "unit-9"),
        ("power", "off", "unit-9"),
        ("console", "unit-9"),
        ("get", "units", "unit-9"),
    ],
)
def test_unknown_unit(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = _dead_rack_config(tmp_path)
    result = run_cli("--config", str(path), *args)
    assert_one_line_error(result, 1, "unknown unit 'unit-9'", "unit-1, unit-2")


def test_unreadable_ca_bundle(tmp_path: Path) -> None:
    path = _dead_rack_config(tmp_path)
    (tmp_path / "ca.crt").write_text("not a certificate")
    result = run_cli("--config", str(path), "get", "units")
    assert_one_line_error(result, 1, "CA bundle")


def test_malformed_config(tmp_path: Path) -> None:
    path = tmp_path / "racklet.yaml"
    path.write_text(yaml.safe_dump({"stateDir": str(tmp_path), "rack": {"units": "many"}}))
    result = run_cli("--config", str(path), "get", "units")
    assert_one_line_error(result, 1, "malformed")


def test_power_needs_a_name_or_all(tmp_path: Path) -> None:
    path = _dead_rack_config(tmp_path)
    assert_one_line_error(run_cli("--config", str(path), "power", "on"), 2, "--all")
    assert_one_line_error(
        run_cli("--config", str(path), "power", "on", "unit-1", "--all"), 2, "--all"
    )


def test_unknown_command() -> None:
    assert_one_line_error(run_cli("explode"), 2, "explode")


def test_second_up_on_same_state_dir(tmp_path: Path) -> None:
    with open(tmp_path / "up.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("up", "--state-dir", str(tmp_path))
    assert_one_line_error(result, 1, "already running")
