"""``racklet up`` as a supervisor: the hardware side outlives the controller, children die with
``up``, one controller per store, and a state dir that is private whatever the user's umask.

One rack, started under ``umask 000`` (the worst a user can have), goes through it all in
order: its state dir is walked once units booted, its controller is killed with SIGKILL (the
units run on and ``up`` restarts it), a second controller is refused the store, and finally
``up`` itself is killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import RunningRack, phase, start_rack, stop_rack
from tests.e2e.test_up_ha import Output

GONE_DEADLINE = 60.0  # generous for a loaded 2-core machine; measured: under 2 s
SECRETS = {"ca.key", "server.key", "client.key", "api.token", "admin.password", "accounts.json"}


def _children(pid: int) -> dict[str, int]:
    """``up``'s child processes by module (``racklet.hardware_side``, ``racklet.controller``)."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue  # reaped since the list was read
        if b"-m" in argv:  # an exiting child (a zombie) has no command line left
            found[argv[argv.index(b"-m") + 1].decode()] = int(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _uptimes(rack: RunningRack) -> dict[str, float]:
    """Each unit's OS uptime, from its agent's own /metrics (not through the controller)."""
    context = ssl.create_default_context(cafile=str(rack.state_dir / "pki" / "ca.crt"))
    context.check_hostname = False
    found = {}
    for unit in rack.config["units"]:
        text = httpx.get(
            f"https://127.0.0.1:{unit['agentPort']}/metrics", verify=context, timeout=10
        ).text
        line = next(x for x in text.splitlines() if x.startswith("racklet_node_uptime_seconds"))
        found[unit["name"]] = float(line.split()[-1])
    return found


def _await_api(rack: RunningRack) -> None:
    """Until the restarted controller answers (it binds its ports again within seconds)."""
    deadline = time.monotonic() + GONE_DEADLINE
    while rack.cli("get", "units", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the restarted controller never answered"
        time.sleep(0.2)


def _loose_paths(root: Path) -> list[str]:
    """Every path in the state dir that breaks the rules: group/other may write it, a
    directory others may enter, a secret others may read."""
    bad = []
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue  # a symlink's own mode means nothing; its target is walked
        mode = stat.S_IMODE(info.st_mode)
        if (
            mode & 0o022
            or (stat.S_ISDIR(info.st_mode) and mode & 0o027)
            or ((path.name in SECRETS or path.suffix == ".key") and mode != 0o600)
        ):
            bad.append(f"{mode:o} {path.relative_to(root)}")
    return bad


def test_the_hardware_outlives_the_controller_and_nothing_outlives_up(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        rack = start_rack(tmp_path / "rack", "--units", "2", "--speed", "10")
    finally:
        os.umask(previous)
    output = Output(rack)
    try:
        all_running = "2/2 Running"
        rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), all_running)
        assert _loose_paths(rack.state_dir) == []

        children = _children(rack.process.pid)
        before = _uptimes(rack)
        os.kill(children["racklet.controller"], signal.SIGKILL)
        output.wait_for("controller exited with status -9; the units run on")
        assert _alive(children["racklet.hardware_side"])
        during = _uptimes(rack)  # the agents answer while no controller runs
        assert all(during[name] > before[name] for name in before)
        output.wait_for("restarting controller")
        _await_api(rack)
        rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "adopted, Running")
        after = _uptimes(rack)
        assert all(after[name] > during[name] for name in before), "a unit was power-cycled"
        restarted = _children(rack.process.pid)
        assert restarted["racklet.hardware_side"] == children["racklet.hardware_side"]
        assert restarted["racklet.controller"] != children["racklet.controller"]

        second = subprocess.run(
            [sys.executable, "-m", "racklet.controller", "--state-dir", str(rack.state_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"racklet controller: {rack.state_dir / 'controller' / 'store.db'} is already in "
            f"use by another controller (pid {restarted['racklet.controller']}); one controller "
            "writes a SQLite store: stop that one first"
        ]

        rack.process.kill()  # SIGKILL: up cannot stop its children itself
        rack.process.wait()
        deadline = time.monotonic() + GONE_DEADLINE
        while any(_alive(pid) for pid in restarted.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in restarted.values()), "an orphan outlived up"
    finally:
        stop_rack(rack)
