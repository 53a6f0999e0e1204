"""GitOps on a running rack: a commit in a watched local repository powers a unit off."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import RunningRack, phase


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=Teacher",
            "-c",
            "user.email=t@example.org",
            *args,
        ],
        check=True,
        capture_output=True,
    )


def test_a_commit_is_applied_by_the_running_controller(
    small_rack: RunningRack, tmp_path: Path
) -> None:
    rack = small_rack
    rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "2/2 Running")
    repo = tmp_path / "class-rack"
    rack.cli("init", "gitops", str(repo))
    rack.cli("apply", "-f", str(repo / "gitsource.yaml"))

    manifest = repo / "rack" / "units" / "unit-2.yaml"
    manifest.write_text(manifest.read_text().replace("power: 'On'", "power: 'Off'"))
    _git(repo, "commit", "-am", "Power unit-2 off for the lab")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()

    rack.wait_for(lambda u: phase(u, "unit-2") == "Off", "unit-2 Off from the commit", timeout=60)
    deadline = time.monotonic() + 30
    while True:
        source = json.loads(rack.cli("get", "gitsource", "rack", "-o", "json").stdout)
        if (source.get("status") or {}).get("lastAppliedCommit") == head:
            break
        assert time.monotonic() < deadline, source.get("status")
        time.sleep(0.3)
    assert phase(rack.units(), "unit-1") == "Running"
