"""A real Prometheus (Debian's ``prometheus``) scraping a real ``racklet up`` at ``--speed 10``.

It runs on 127.0.0.1 with the configuration ``racklet prometheus config`` writes, scrapes
every second, and must see every target up, per-unit watts from the energy counters that
agree with the BMCs' Redfish power readings, and data for every query of the Grafana
dashboard shipped in ``deploy/grafana``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from racklet.cli._prometheus import recording_rules
from racklet.net import client_context
from tests.e2e.conftest import RunningRack, phase, start_rack, stop_rack
from tests.rmc.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "racklet.json"
RULES = ROOT / "deploy" / "grafana" / "racklet.rules.yml"

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="Debian's prometheus (scripts/apt-packages.txt)"
)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningRack]:
    rack = start_rack(tmp_path / "rack", "--units", "2", "--speed", "10")
    try:
        yield rack
    finally:
        stop_rack(rack)


@pytest.fixture
def prometheus(running: RunningRack, tmp_path: Path) -> Iterator[str]:
    out = running.cli("prometheus", "config", "--interval", "1s").stdout
    config = running.state_dir / "prometheus" / "prometheus.yml"
    assert str(config) in out
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(base: str, expression: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expression}, timeout=10)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def until(check: Any, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def dashboard_expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def test_the_shipped_rules_are_the_ones_racklet_writes() -> None:
    assert yaml.safe_load(RULES.read_text()) == recording_rules()


def test_a_real_prometheus_scrapes_the_rack(running: RunningRack, prometheus: str) -> None:
    running.wait_for(
        lambda units: all(phase(units, name) == "Running" for name in units),
        "every unit to run",
    )

    def all_up() -> list[dict[str, Any]] | None:
        answer = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()
        targets: list[dict[str, Any]] = answer["data"]["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets}
        complete = len(targets) == 1 + 2 + 2 + 1 and len(jobs) == 4
        return targets if complete and all(t["health"] == "up" for t in targets) else None

    targets = until(all_up, "every target up")
    assert {t["scrapeUrl"].split(":")[0] for t in targets} == {"https"}

    # Watts from the counters, divided by the twin's speed, against each BMC's Redfish reading.
    # The 1-minute window first has to slide past the boot (a unit draws 0 W off, more while
    # booting): the two agree once it holds only the running unit, never if the speed is off.
    ca = running.state_dir / "pki" / "ca.crt"
    for unit in running.config["units"]:
        name = unit["name"]
        expression = f'racklet:unit_power_watts:rate1m{{job="racklet-bmc",unit="{name}"}}'
        with httpx.Client(
            base_url=unit["bmc"]["url"],
            verify=client_context(ca),
            auth=(unit["bmc"]["username"], unit["bmc"]["password"]),
        ) as bmc:

            def agree(
                expression: str = expression, bmc: httpx.Client = bmc, name: str = name
            ) -> tuple[float, float]:
                found = query(prometheus, expression)
                sensor = bmc.get(f"/redfish/v1/Chassis/{name}/Sensors/power").json()
                watts, reading = float(found[0]["value"][1]) if found else 0.0, sensor["Reading"]
                if reading and abs(watts - reading) <= 0.05 * reading:
                    return (watts, reading)
                raise httpx.HTTPError(f"rate {watts:.3f} W vs Redfish {reading} W")

            watts, reading = until(agree, f"{name}'s rate to agree with Redfish", timeout=150)
        assert watts == pytest.approx(reading, rel=0.05)

    missing = []
    for expression in dashboard_expressions():
        try:
            until(lambda e=expression: query(prometheus, e), expression, timeout=30)
        except AssertionError:
            missing.append(expression)
    assert missing == [], "dashboard queries without data"

    # Hot-swap: the running rack rewrites the file-SD targets, and Prometheus follows. A
    # pulled unit's agent target goes (its BMC's stays: the board is in the tray, Absent);
    # put back, it returns.
    def agents() -> set[str]:
        answer = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()
        return {
            t["labels"]["unit"]
            for t in answer["data"]["activeTargets"]
            if t["labels"]["job"] == "racklet-agent"
        }

    assert agents() == {"unit-1", "unit-2"}
    assert running.cli("slot", "pull", "2").stdout.strip() == "slot 2: unit-2 pulled"
    until(lambda: agents() == {"unit-1"}, "unit-2's agent target to leave Prometheus")
    bmcs = json.loads((running.state_dir / "prometheus" / "targets" / "bmc.json").read_text())
    assert [group["labels"]["unit"] for group in bmcs] == ["unit-1", "unit-2"]
    running.cli("slot", "insert", "2")
    until(lambda: agents() == {"unit-1", "unit-2"}, "unit-2's agent target to come back")
