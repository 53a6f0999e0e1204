"""``racklet up``'s restart policy, with real processes: a dead controller is restarted with a
doubling back-off while the hardware side runs on; one that keeps dying, or a dead twin,
ends the run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from racklet.cli import _up
from racklet.config import ApiConfig, ControllerConfig, RackConfig, RackSettings


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[_up._Supervisor]:
    """A supervisor whose controller is the real one, on a state dir it cannot run from (so
    it exits at once, as a crashing controller does), and whose twin is a stand-in that
    simply runs on."""
    (tmp_path / "logs").mkdir()
    config = RackConfig(
        stateDir=str(tmp_path),
        rack=RackSettings(),
        api=ApiConfig(url="https://127.0.0.1:1", caBundle="ca.crt", token="t"),
        controller=ControllerConfig(apiPort=1, machinePort=2),
        units=[],
    )
    running = _up._Supervisor(config)
    twin = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    running.children["twin"], running.started["twin"] = twin, time.monotonic()
    try:
        yield running
    finally:
        running.stop()
        assert twin.stdin is not None
        twin.stdin.close()


def _until_given_up(restarts: _up._Restarts) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            restarts.check()
        except _up.UpError as exc:
            return str(exc)
        time.sleep(0.02)
    raise AssertionError("the supervisor never gave up on a controller that keeps dying")


def test_a_crashing_controller_is_restarted_with_back_off_then_given_up(
    supervisor: _up._Supervisor, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_up, "RESTART_DELAY", 0.01)
    _up._spawn_controller(supervisor, "controller")
    first = supervisor.children["controller"].pid
    error = _until_given_up(_up._Restarts(supervisor, ["controller"]))
    assert f"died {_up.MAX_RESTARTS + 1} times in a row" in error
    assert "no running rack" in error  # the log's tail says why
    printed = [line for line in capsys.readouterr().out.splitlines() if "restarting" in line]
    assert len(printed) == _up.MAX_RESTARTS
    assert all("exited with status 1; the units run on" in line for line in printed)
    delays = [float(line.split(" in ")[1].split(" s ")[0]) for line in printed]
    assert delays == [0.01 * 2**n for n in range(_up.MAX_RESTARTS)]
    assert supervisor.children["controller"].pid != first
    assert supervisor.children["twin"].poll() is None  # the hardware ran on throughout


def test_a_dead_twin_ends_the_run(supervisor: _up._Supervisor) -> None:
    twin = supervisor.children["twin"]
    assert twin.stdin is not None
    twin.stdin.close()  # input() ends: the stand-in exits
    twin.wait(timeout=60)
    with pytest.raises(_up.UpError, match="the twin process died"):
        _up._Restarts(supervisor, ["controller"]).check()
