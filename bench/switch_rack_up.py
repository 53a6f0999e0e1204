"""Does the switch relay slow a normal rack? Start to N/N Running, relayed vs direct, one run.

Per round, a fresh state dir is prepared as ``racklet up`` prepares it; for the *direct* rack
the config is then rewritten as a rack from before the relay was (no ``switch`` section: each
BMC listens at its ``bmc.url``, each unit's trust bundle names the controller's own machine and
bulk listeners), so the only difference is whether traffic crosses the switch. Both processes
(controller, twin) are started and the time to N/N Running through the API is taken. Rounds
alternate the order. Provisioning (CA, keys, payload) is not timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.switch_relay import _spawn
from racklet.cli._prepare import prepare
from racklet.config import RackConfig, save


def _direct(config: RackConfig) -> None:
    """Rewrite a prepared rack as one without the relaying switch."""
    units = []
    for unit in config.units:
        units.append(
            unit.model_copy(
                update={
                    "bmc": unit.bmc.model_copy(
                        update={"url": f"https://127.0.0.1:{unit.bmc_port}"}
                    ),
                    "bmc_port": None,
                    "switch_ports": {},
                }
            )
        )
        path = config.layout.bmc(unit.name) / "trust.json"
        trust = json.loads(path.read_text())
        trust["bootServer"] = config.controller.machine_url
        trust["bootServers"] = [config.controller.machine_url]
        trust["targetsUrl"] = config.controller.targets_url
        path.write_text(json.dumps(trust, indent=2))
    save(config.model_copy(update={"units": units, "switch": None}))


def _round(base: Path, units: int, speed: float, relayed: bool) -> float:
    state = base / ("relayed" if relayed else "direct")
    config = prepare(
        state,
        units=units,
        speed=speed,
        profile="raspberry-pi-4",
        psu_rated_watts=100.0 * max(1, units // 5),
        payload_bytes=65536,
    )
    if not relayed:
        _direct(config)
    started = time.monotonic()
    procs = [
        _spawn("racklet.controller", state, state / "logs" / "controller.log"),
        _spawn("racklet.hardware_side", state, state / "logs" / "twin.log"),
    ]
    phases: list[object] = []
    try:
        headers = {"Authorization": f"Bearer {config.api.token}"}
        ca = str(config.layout.ca_cert)
        deadline = started + 300
        while time.monotonic() < deadline:
            try:
                with httpx.Client(base_url=config.api.url, verify=ca, headers=headers) as api:
                    items = api.get("/api/v1/computeunits").json()["items"]
                phases = [(item.get("status") or {}).get("phase") for item in items]
                if len(phases) == units and all(p == "Running" for p in phases):
                    return time.monotonic() - started
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        logs = "".join(
            (state / "logs" / f"{name}.log").read_text()[-4000:] for name in ("twin", "controller")
        )
        which = "relayed" if relayed else "direct"
        raise RuntimeError(f"{which} rack not Running in 300 s: {phases}\n{logs}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench switch_rack_up")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args, _ = parser.parse_known_args(argv)
    times: dict[bool, list[float]] = {True: [], False: []}
    for index in range(args.rounds):
        for relayed in (True, False) if index % 2 == 0 else (False, True):
            with tempfile.TemporaryDirectory(prefix="racklet-bench-switchup-") as name:
                times[relayed].append(_round(Path(name), args.units, args.speed, relayed))
    print(f"switch_rack_up: {args.units} units at speed {args.speed:g}, start to all Running")
    for relayed, label in ((True, "relayed"), (False, "direct")):
        runs = ", ".join(f"{t:.2f}" for t in times[relayed])
        print(f"  {label:8} median {statistics.median(times[relayed]):6.2f} s  ({runs})")
    ratio = statistics.median(times[True]) / statistics.median(times[False])
    print(f"  relayed/direct: {ratio:.2f}x")
