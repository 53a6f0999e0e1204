"""``python -m racklet.controller`` starts from a state dir, serves, and stops cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from racklet import config as rack_config
from racklet.net import client_context
from racklet.pki import RackCA

START_TIMEOUT = 60.0


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def make_state_dir(root: Path, units: int = 2, ca: RackCA | None = None) -> rack_config.RackConfig:
    layout = rack_config.StateLayout(root)
    ca = ca or RackCA.create(layout.pki)
    layout.controller.mkdir(parents=True)
    ca.issue("racklet-controller", role="controller").write(layout.controller, "server")
    ca.issue("racklet-controller", role="controller", server=False, client=True).write(
        layout.controller, "client"
    )
    ports = _free_ports(2 + units)
    config = rack_config.RackConfig(
        stateDir=str(root),
        rack=rack_config.RackSettings(name="rack-7", units=units, psuRatedWatts=30.0),
        api=rack_config.ApiConfig(
            url=f"https://127.0.0.1:{ports[0]}", caBundle=str(layout.ca_cert), token="tok"
        ),
        controller=rack_config.ControllerConfig(apiPort=ports[0], machinePort=ports[1]),
        units=[
            rack_config.UnitConfig(
                name=f"unit-{i + 1}",
                slot=i + 1,
                agentPort=1,
                bmc=rack_config.BmcConfig(
                    url=f"https://127.0.0.1:{ports[2 + i]}", username="admin", password="pw"
                ),
            )
            for i in range(units)
        ],
    )
    rack_config.save(config)
    return config


def start(state_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "racklet.controller", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def poll(config: rack_config.RackConfig, path: str, predicate: Any) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(
                config.api.url + path,
                headers={"Authorization": f"Bearer {config.api.token}"},
                verify=client_context(config.api.ca_bundle),
                timeout=2.0,
            )
            last = response.json() if response.status_code == 200 else response.status_code
            if response.status_code == 200 and predicate(last):
                return last
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{path} never satisfied the condition; last: {last}")


def test_runs_declares_the_rack_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = make_state_dir(tmp_path)
    process = start(tmp_path)
    try:
        units = poll(
            config,
            "/api/v1/computeunits",
            lambda body: all(u["status"]["phase"] == "Unreachable" for u in body["items"]),
        )
        assert [(u["metadata"]["name"], u["spec"]["power"]) for u in units["items"]] == [
            ("unit-1", "On"),
            ("unit-2", "On"),
        ]
        rack = poll(config, "/api/v1/racks/rack-7", lambda body: True)
        assert rack["spec"]["psuRatedWatts"] == 30.0
        metrics = httpx.get(
            config.api.url + "/metrics", verify=client_context(config.api.ca_bundle)
        ).text
        assert 'racklet_unit_phase{phase="Unreachable",unit="unit-1"} 1.0' in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None and process.stdout is not None
        process.stdout.close()
        process.stderr.close()
    assert (tmp_path / "controller" / "store.db").exists()


def test_user_changes_survive_a_restart(tmp_path: Path) -> None:
    config = make_state_dir(tmp_path, units=1)
    for attempt in range(2):
        process = start(tmp_path)
        try:
            unit = poll(config, "/api/v1/computeunits/unit-1", lambda body: True)
            if attempt == 0:
                response = httpx.patch(
                    config.api.url + "/api/v1/computeunits/unit-1",
                    json={"spec": {"power": "Off"}},
                    headers={"Authorization": f"Bearer {config.api.token}"},
                    verify=client_context(config.api.ca_bundle),
                )
                assert response.status_code == 200
            else:
                assert unit["spec"]["power"] == "Off"
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                assert stream is not None
                stream.close()


def test_missing_config_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "racklet.controller", "--state-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0]


def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = make_state_dir(tmp_path, units=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", config.controller.api_port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "racklet.controller", "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{config.controller.api_port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_racklet_yaml_token_is_admin_and_writes_are_audited(tmp_path: Path) -> None:
    config = make_state_dir(tmp_path, units=1)
    process = start(tmp_path)
    try:
        poll(config, "/api/v1/computeunits/unit-1", lambda body: True)
        made = httpx.post(
            config.api.url + "/api/v1/tokens",
            json={"role": "viewer", "name": "alice"},
            headers={"Authorization": f"Bearer {config.api.token}"},
            verify=client_context(config.api.ca_bundle),
        )
        assert made.status_code == 201, made.text  # only an admin may make tokens
        refused = httpx.patch(
            config.api.url + "/api/v1/computeunits/unit-1",
            json={"spec": {"power": "Off"}},
            headers={"Authorization": f"Bearer {made.json()['token']}"},
            verify=client_context(config.api.ca_bundle),
        )
        assert refused.status_code == 403
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()
    audit = tmp_path / "controller" / "audit.log"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(x["principal"], x["verb"], x["object"], x["outcome"]) for x in lines] == [
        ("rack-admin", "create", "tokens", "succeeded"),
        ("alice", "patch", "computeunits/unit-1", "refused"),
    ]
    assert audit.stat().st_mode & 0o777 == 0o600
