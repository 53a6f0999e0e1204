"""Two real controller processes on one etcd: one leads; SIGKILL it and the other takes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from racklet import config as rack_config
from racklet.net import client_context
from tests.controller.test_main import make_state_dir
from tests.store.etcd_server import EtcdServer

DEADLINE = 45.0  # generous: CI is slow; the design bound is lease TTL (5 s) + one poll (1 s)


def _controller(state_dir: Path) -> subprocess.Popen[bytes]:
    log = (state_dir / "controller.log").open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "racklet.controller", "--state-dir", str(state_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _leading(config: rack_config.RackConfig) -> bool | None:
    """What the controller's /metrics says about leading; None while it is not answering."""
    try:
        text = httpx.get(
            config.api.url + "/metrics", verify=client_context(config.api.ca_bundle), timeout=2.0
        ).text
    except httpx.TransportError:
        return None
    if "racklet_controller_leader 1.0" in text:
        return True
    return False if "racklet_controller_leader 0.0" in text else None


def _wait(what: str, check: object) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_of_the_leader_hands_over(tmp_path: Path, etcd: EtcdServer) -> None:
    configs = []
    for name in ("one", "two"):
        config = make_state_dir(tmp_path / name, units=1)
        config.rack.store = "etcd://" + etcd.url.removeprefix("http://")
        rack_config.save(config)
        configs.append(config)
    processes = [_controller(tmp_path / name) for name in ("one", "two")]
    try:
        _wait("both controllers up", lambda: all(_leading(c) is not None for c in configs))
        _wait("one leader", lambda: sorted(bool(_leading(c)) for c in configs) == [False, True])
        leader = 0 if _leading(configs[0]) else 1
        follower = configs[1 - leader]
        # the follower serves the API, reads and writes, from the shared etcd
        headers = {"Authorization": f"Bearer {follower.api.token}"}
        verify = client_context(follower.api.ca_bundle)
        patched = httpx.patch(
            follower.api.url + "/api/v1/computeunits/unit-1",
            json={"metadata": {"labels": {"written-by": "follower"}}},
            headers=headers,
            verify=verify,
        )
        assert patched.status_code == 200, patched.text
        os.kill(processes[leader].pid, signal.SIGKILL)
        processes[leader].wait()
        started = time.monotonic()
        _wait("the follower to take over", lambda: _leading(follower) is True)
        print(f"takeover after SIGKILL: {time.monotonic() - started:.1f} s")
        unit = httpx.get(
            follower.api.url + "/api/v1/computeunits/unit-1", headers=headers, verify=verify
        ).json()
        assert unit["metadata"]["labels"]["written-by"] == "follower"
        survivor = processes[1 - leader]
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_bad_store_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = make_state_dir(tmp_path, units=1)
    config.rack.store = "postgres://db:5432"
    rack_config.save(config)
    result = subprocess.run(
        [sys.executable, "-m", "racklet.controller", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "racklet controller: rack.store: 'postgres://db:5432' is not 'sqlite', "
        "'etcd://HOST:PORT' or 'etcds://HOST:PORT'"
    ]
