"""apply / delete / watch / gitops sync / init gitops against the real generic resource API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from racklet.api import ComputeUnit, GitSource, Rack
from tests.cli.conftest import LiveApi, run_main
from tests.cli.test_apply import unit
from tests.cli.test_resources import one_line_error
from tests.gitops.conftest import ProductGitOps

RACK2 = """\
apiVersion: racklet.dev/v1alpha1
kind: Rack
metadata:
  name: rack-2
  labels: {room: lab}
spec:
  psuRatedWatts: 80
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    return folder


def test_apply_creates_configures_and_is_idempotent(live: LiveApi, manifests: Path) -> None:
    (manifests / "rack2.yaml").write_text(RACK2)
    (manifests / "unit1.yaml").write_text(unit("unit-1", 1, power="Off"))
    first = live.cli("apply", "-f", str(manifests))
    assert first.code == 0, first
    assert first.out.splitlines() == ["rack/rack-2 created", "computeunit/unit-1 configured"]
    assert live.run(live.store.get(Rack, "rack-2")).metadata.labels == {"room": "lab"}
    assert live.run(live.store.get(ComputeUnit, "unit-1")).spec.power == "Off"
    generation = live.run(live.store.get(ComputeUnit, "unit-1")).metadata.generation

    again = live.cli("apply", "-f", str(manifests))
    assert again.out.splitlines() == ["rack/rack-2 unchanged", "computeunit/unit-1 unchanged"]
    assert live.run(live.store.get(ComputeUnit, "unit-1")).metadata.generation == generation


def test_apply_from_stdin(live: LiveApi) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "racklet.cli",
            "--config",
            str(live.config_path),
            "apply",
            "-f",
            "-",
        ],
        input=RACK2,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rack/rack-2 created"


def test_apply_dry_run_writes_nothing(live: LiveApi, manifests: Path) -> None:
    (manifests / "rack2.yaml").write_text(RACK2)
    result = live.cli("apply", "--dry-run", "-f", str(manifests / "rack2.yaml"))
    assert result.out.strip() == "rack/rack-2 created (dry run)"
    assert [r.metadata.name for r in live.run(live.store.list(Rack))] == ["rack-1"]


def test_server_refusal_names_the_file(live: LiveApi, manifests: Path) -> None:
    # valid on its own, refused by the server: a unit's slot cannot change
    (manifests / "move.yaml").write_text(unit("unit-2", 5))
    one_line_error(live.cli("apply", "-f", str(manifests / "move.yaml")), 1, "move.yaml", "slot")


def test_delete_by_name_and_by_file(live: LiveApi, manifests: Path) -> None:
    (manifests / "rack2.yaml").write_text(RACK2)
    live.cli("apply", "-f", str(manifests))
    assert live.cli("delete", "rack", "rack-2").out.strip() == "rack/rack-2 deleted"
    one_line_error(live.cli("delete", "rack", "rack-2"), 1, "rack-2", "not found")
    assert live.cli("delete", "rack", "rack-2", "--ignore-not-found").code == 0
    live.cli("apply", "-f", str(manifests))
    assert live.cli("delete", "-f", str(manifests)).out.strip() == "rack/rack-2 deleted"
    one_line_error(live.cli("delete"), 2, "KIND NAME")


def test_get_watch_prints_changes_as_they_happen(live: LiveApi, manifests: Path) -> None:
    argv = [sys.executable, "-m", "racklet.cli", "--config", str(live.config_path)]
    with subprocess.Popen(
        [*argv, "get", "racks", "--watch", "-o", "name"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watcher:
        try:
            assert watcher.stdout is not None
            assert watcher.stdout.readline().strip() == "rack/rack-1"  # the list comes first
            (manifests / "rack2.yaml").write_text(RACK2)
            assert live.cli("apply", "-f", str(manifests)).code == 0
            assert watcher.stdout.readline().strip() == "rack/rack-2"  # then each change
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)


def _write_status(live: LiveApi, name: str, **fields: object) -> None:
    unit = live.run(live.store.get(ComputeUnit, name))
    unit.status = unit.status.model_copy(update=fields)
    live.run(live.store.update_status(unit))


def test_get_watch_prints_a_row_per_change_it_shows(live: LiveApi) -> None:
    argv = [sys.executable, "-m", "racklet.cli", "--config", str(live.config_path)]
    with subprocess.Popen(
        [*argv, "get", "units", "unit-1", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watcher:
        try:
            assert watcher.stdout is not None
            assert watcher.stdout.readline().split()[:3] == ["NAME", "SLOT", "PHASE"]
            assert watcher.stdout.readline().split()[:3] == ["unit-1", "1", "Unknown"]
            # a running unit's status is rewritten as its energy counter moves: no new row
            for joules in range(1, 6):
                _write_status(live, "unit-1", energy_joules=float(joules))
            _write_status(live, "unit-1", phase="Running", power_watts=2.5)  # one new row
            assert watcher.stdout.readline().split()[:4] == ["unit-1", "1", "Running", "2.50"]
            for joules in range(6, 9):
                _write_status(live, "unit-1", energy_joules=float(joules))
            _write_status(live, "unit-1", phase="Off", power_watts=0.0)
            assert watcher.stdout.readline().split()[:4] == ["unit-1", "1", "Off", "0.00"]
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)


def test_init_gitops_then_sync_applies_the_repository(live: LiveApi, tmp_path: Path) -> None:
    repo = tmp_path / "rack-repo"
    init = live.cli("init", "gitops", str(repo))
    assert init.code == 0, init
    assert "rack/units/unit-3.yaml" in init.out
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True, check=True
    )
    assert log.stdout.strip() == "Racklet starter: the default rack"

    runner = ProductGitOps(live.store, poll=0.05, refresh=0.1)
    live.run(runner.start())
    try:
        applied = live.cli("apply", "-f", str(repo / "gitsource.yaml"))
        assert applied.out.strip() == "gitsource/rack created"
        sync = live.cli("gitops", "sync", "rack", "--timeout", "30s")
        assert sync.code == 0, sync
        assert sync.out.startswith("gitsource/rack synced: applied main@")
        source = live.run(live.store.get(GitSource, "rack"))
        assert source.status.last_applied_commit is not None
        units = live.run(live.store.list(ComputeUnit))
        # the starter took the rack from racklet.yaml: the same units, now owned by Git
        assert sorted(u.metadata.name for u in units) == ["unit-1", "unit-2", "unit-3"]
        assert all(u.metadata.labels["racklet.dev/gitsource"] == "rack" for u in units)
        table = live.cli("get", "gitsources").out
        assert "True" in table and source.status.last_applied_commit[:12] in table

        (repo / "rack" / "units" / "unit-2.yaml").write_text(
            (repo / "rack" / "units" / "unit-2.yaml").read_text().replace("slot: 2", "slot: 77")
        )
        subprocess.run(["git", "-C", str(repo), "commit", "-qam", "oops"], check=True)
        failed = live.cli("gitops", "sync")
        one_line_error(failed, 1, "sync failed for rack")
        assert "unit-2.yaml" in failed.out and "spec.slot" in failed.out
    finally:
        live.run(runner.stop())


def test_gitops_sync_of_a_missing_source_is_one_line(live: LiveApi) -> None:
    one_line_error(live.cli("gitops", "sync", "nope"), 1, "nope", "not found")


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = run_main("--config", str(tmp_path / "none.yaml"), "init", "gitops", str(tmp_path))
    one_line_error(result, 1, "not empty")
    assert (tmp_path / "keep.txt").read_text() == "mine"
