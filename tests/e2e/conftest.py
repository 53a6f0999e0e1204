"""A whole twin rack started with the real ``racklet up`` in a temporary state dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

START_TIMEOUT = 120.0


@dataclass
class RunningRack:
    state_dir: Path
    process: subprocess.Popen[str]

    @property
    def config_path(self) -> Path:
        return self.state_dir / "racklet.yaml"

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.config_path.read_text())
        return data

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "racklet.cli", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"racklet {' '.join(args)} failed: {result.stderr}")
        return result

    def units(self) -> dict[str, dict[str, Any]]:
        import json

        items = json.loads(self.cli("get", "units", "-o", "json").stdout)["items"]
        return {item["metadata"]["name"]: item for item in items}

    def wait_for(
        self, predicate: Any, what: str, timeout: float = 90.0
    ) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        units: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            units = self.units()
            if predicate(units):
                return units
            time.sleep(0.5)
        phases = {n: (u.get("status") or {}).get("phase") for n, u in units.items()}
        logs = "\n".join(
            p.read_text()[-3000:] for p in sorted((self.state_dir / "logs").glob("*.log"))
        )
        raise AssertionError(f"timed out waiting for {what}; phases: {phases}\n{logs}")


def phase(units: dict[str, dict[str, Any]], name: str) -> str | None:
    return (units[name].get("status") or {}).get("phase")


def start_rack(state_dir: Path, *args: str) -> RunningRack:
    process = subprocess.Popen(
        [sys.executable, "-m", "racklet.cli", "up", "--state-dir", str(state_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if " is up with " in line:
            return RunningRack(state_dir, process)
    process.kill()
    process.wait()
    process.stdout.close()
    raise AssertionError("racklet up did not come up:\n" + "".join(seen))


def stop_rack(rack: RunningRack) -> None:
    rack.process.send_signal(signal.SIGTERM)
    try:
        rack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        rack.process.kill()
        rack.process.wait()
    if rack.process.stdout is not None:
        rack.process.stdout.close()


@pytest.fixture(scope="package")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRack]:
    running = start_rack(tmp_path_factory.mktemp("rack"), "--units", "5", "--speed", "10")
    try:
        yield running
    finally:
        stop_rack(running)


@pytest.fixture
def small_rack(tmp_path: Path) -> Iterator[RunningRack]:
    """A fresh two-unit rack of the test's own, for tests that change its trust or state."""
    running = start_rack(tmp_path / "rack", "--units", "2", "--speed", "10")
    try:
        yield running
    finally:
        stop_rack(running)
