"""``racklet prometheus config`` and ``racklet top``: what they write, and their bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from racklet import config as rack_config
from tests.cli.test_errors import _dead_rack_config, assert_one_line_error, run_cli


def test_prometheus_config_writes_file_sd_targets_tls_and_rules(tmp_path: Path) -> None:
    config = _dead_rack_config(tmp_path)  # writing the configuration needs no running rack
    out = tmp_path / "prom"
    result = run_cli("--config", str(config), "prometheus", "config", "--dir", str(out))
    assert result.returncode == 0, result.stderr
    main = yaml.safe_load((out / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in main["scrape_configs"]}
    assert set(jobs) == {"racklet-controller", "racklet-bmc", "racklet-agent", "racklet-rmc"}
    for job in jobs.values():
        assert job["scheme"] == "https"
        assert Path(job["tls_config"]["ca_file"]).name == "ca.crt"
        # the targets live in the state dir, where the running rack keeps them current
        live = (rack_config.load(config).layout.root / "prometheus" / "targets").resolve()
        assert Path(job["file_sd_configs"][0]["files"][0]).parent == live
    bmcs = json.loads((live / "bmc.json").read_text())
    assert [group["labels"]["unit"] for group in bmcs] == ["unit-1", "unit-2"]
    assert main["global"]["scrape_interval"] == "15s"
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "config", str(out / "prometheus.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("interval", ["5x", "0s", "-1s", ""])
def test_prometheus_config_refuses_a_bad_interval(tmp_path: Path, interval: str) -> None:
    config = _dead_rack_config(tmp_path)
    result = run_cli("--config", str(config), "prometheus", "config", "--interval", interval)
    assert_one_line_error(result, 2, "--interval")
    assert not (tmp_path / "prometheus").exists()


@pytest.mark.parametrize("interval", ["0", "abc", "99999"])
def test_top_refuses_a_bad_interval(tmp_path: Path, interval: str) -> None:
    config = _dead_rack_config(tmp_path)
    assert_one_line_error(
        run_cli("--config", str(config), "top", "--interval", interval), 2, "--interval"
    )


def test_top_once_on_a_stopped_rack_is_one_line(tmp_path: Path) -> None:
    config = _dead_rack_config(tmp_path)
    assert_one_line_error(run_cli("--config", str(config), "top", "--once"), 1, "no rack answers")
