"""``racklet up --store etcd://… --controllers 2``: SIGKILL the leader, the rack stays managed.

Real processes throughout: an etcd-server on loopback, the twin, two controllers started and
supervised by ``racklet up``. The leader is found in etcd (its key names the winner's pid),
killed with SIGKILL, and a power change sent afterwards to the surviving controller's API
takes effect at the unit's BMC; ``up`` restarts the killed controller on its own ports.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningRack, phase, start_rack, stop_rack
from tests.store.etcd_server import EtcdServer, running_etcd

DEADLINE = 60.0  # generous for a 2-core CI machine; the design bound is lease TTL + one poll


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    yield from running_etcd(tmp_path_factory.mktemp("etcd") / "data")


class Output:
    """What ``racklet up`` prints, collected by a thread so the test can wait for a line."""

    def __init__(self, rack: RunningRack) -> None:
        self.lines: list[str] = []
        assert rack.process.stdout is not None
        self._stream = rack.process.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, after: int = 0) -> str:
        """The first line from index ``after`` on that holds ``text``."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if text in line:
                    return line
            time.sleep(0.1)
        raise AssertionError(f"racklet up never printed {text!r}:\n" + "\n".join(self.lines))


@dataclass
class Via(RunningRack):
    """The running rack, seen through one controller's API (its own racklet.yaml)."""

    config_file: Path = Path()

    @property
    def config_path(self) -> Path:
        return self.config_file


def _leader_in_etcd(etcd: EtcdServer) -> tuple[int, int]:
    """The leading controller's pid and API port, from the leader key it holds in etcd."""
    key = base64.b64encode(b"/racklet/leader").decode()
    kvs = httpx.post(f"{etcd.url}/v3/kv/range", json={"key": key}).json().get("kvs") or []
    assert kvs, "no controller leads"
    _host, pid, api = base64.b64decode(kvs[0]["value"]).decode().split("/")
    return int(pid), int(api.removeprefix("api:"))


def test_sigkill_of_the_leading_controller_leaves_the_rack_managed(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    store = "etcd://" + etcd.url.removeprefix("http://")
    rack = start_rack(
        tmp_path / "rack", "--units", "2", "--speed", "10", "--store", store, "--controllers", "2"
    )
    output = Output(rack)
    try:
        configs = {
            "controller": rack.config_path,
            "controller-2": rack.state_dir / "controller-2" / "racklet.yaml",
        }
        announced = output.wait_for("(leader;")
        leader = announced.split(":")[0].strip()
        assert leader in configs
        output.wait_for("Try: racklet")
        pid, api_port = _leader_in_etcd(etcd)
        assert f":{api_port}/" in announced  # up printed the one etcd says leads
        survivor = next(name for name in configs if name != leader)
        via_survivor = Via(rack.state_dir, rack.process, configs[survivor])
        # managed before the kill: the leader has observed unit-1 and reported a phase
        via_survivor.wait_for(lambda u: phase(u, "unit-1") not in (None, "Unknown"), "a phase")

        os.kill(pid, signal.SIGKILL)
        killed_at = len(output.lines)
        output.wait_for(f"restarting {leader}", after=killed_at)
        via_survivor.cli("power", "off", "unit-1")  # after the kill, to the surviving API
        # a new term: the survivor, or the restarted controller if it won the election
        new_term = output.wait_for(" now leads (pid ", after=killed_at)
        assert f"(pid {pid})" not in new_term
        assert _leader_in_etcd(etcd)[0] != pid
        # what the BMC reports (phase Off already covers PoweringOff)
        via_survivor.wait_for(
            lambda u: (u["unit-1"].get("status") or {}).get("powerState") == "Off", "unit-1 Off"
        )
        # heartbeats go to every controller, so the new leader sees the untouched unit run
        via_survivor.wait_for(lambda u: phase(u, "unit-2") == "Running", "unit-2 Running")
        new_pid = _leader_in_etcd(etcd)[0]
        rack_status = json.loads(via_survivor.cli("get", "racks", "-o", "json").stdout)
        racks = rack_status.get("items", [rack_status])
        leaders = {(r.get("status") or {}).get("leader", "") for r in racks}
        deadline = time.monotonic() + DEADLINE
        while not any(f"/{new_pid}/" in name for name in leaders):  # the rack names its leader
            assert time.monotonic() < deadline, f"rack status names {leaders}, not pid {new_pid}"
            time.sleep(0.5)
            rack_status = json.loads(via_survivor.cli("get", "racks", "-o", "json").stdout)
            racks = rack_status.get("items", [rack_status])
            leaders = {(r.get("status") or {}).get("leader", "") for r in racks}
        assert rack.process.poll() is None  # the rack is still up
        via_survivor.cli("power", "on", "unit-1")
        via_survivor.wait_for(lambda u: phase(u, "unit-1") != "Off", "unit-1 powering on")
    finally:
        stop_rack(rack)
