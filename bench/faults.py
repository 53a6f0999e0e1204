"""Faults on a real ``racklet up`` rack: how fast the controller sees them, how fast it recovers.

One rack (16 units by default, speed 1), then in turn:

- one unit's boot: a pulled slot re-inserted, from ``racklet slot insert`` to Running (the
  yardstick for the outage recovery);
- slot pull → the controller reports ``Absent`` (from the pull's answer);
- partition → ``Unreachable`` (from the Fault turning Active);
- a 10 s busbar outage (a ``BusbarOutage`` Fault with ``duration: 10s``) → every unit
  Running again, timed from the moment the Fault is Cleared (power back).

Everything goes through the CLI's paths (the API for Faults, the control endpoint for slots,
called in-process so a CLI's start-up on a loaded machine is not counted); phases are polled
from the API every 50 ms, so each figure is at most that much late.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench._rack import start_rack
from racklet.controller._hardware import HardwareControl
from racklet.net import client_context

POLL = 0.05


class Api:
    def __init__(self, state: Path) -> None:
        config = yaml.safe_load((state / "racklet.yaml").read_text())
        self.config_path = state / "racklet.yaml"
        self.control_url = str(config["control"]["url"])
        self.client = httpx.Client(
            base_url=config["api"]["url"],
            verify=client_context(config["api"]["caBundle"]),
            headers={"Authorization": f"Bearer {config['api']['token']}"},
            timeout=30,
        )

    def phases(self) -> dict[str, str]:
        items = self.client.get("/api/v1/computeunits").json()["items"]
        return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}

    def fault(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get(f"/api/v1/faults/{name}").json()
        return data

    def inject(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": "racklet.dev/v1alpha1", "kind": "Fault",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        self.client.post("/api/v1/faults", json=body).raise_for_status()

    def clear(self, name: str) -> None:
        self.client.patch(
            f"/api/v1/faults/{name}", json={"spec": {"cleared": True}}
        ).raise_for_status()


def slot(url: str, state: Path, action: str) -> None:
    """Pull or insert slot 2 through the control endpoint, as ``racklet slot`` does."""

    async def call() -> None:
        control = HardwareControl.for_state_dir(url, state)
        try:
            await (control.pull(2) if action == "pull" else control.insert(2))
        finally:
            await control.aclose()

    asyncio.run(call())


def wait(predicate: Callable[[], bool], what: str, timeout: float) -> float:
    """Seconds until ``predicate`` holds (polled every 50 ms)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic() - start


def run(units: int, speed: float, psu: float, outage: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="racklet-bench-") as tmp:
        state = Path(tmp) / "state"
        up = start_rack(state, units, speed, ["--psu-watts", str(psu)])
        try:
            wait(lambda: (state / "racklet.yaml").exists(), "racklet.yaml", 120)
            api = Api(state)
            names = [f"unit-{n}" for n in range(1, units + 1)]

            def all_running() -> bool:
                try:
                    phases = api.phases()
                except (httpx.HTTPError, ValueError, KeyError):
                    return False
                return all(phases.get(n) == "Running" for n in names)

            results["rack up to all Running (s)"] = wait(all_running, "the rack", 600)

            slot(api.control_url, state, "pull")  # timed from its answer, not a CLI start-up
            results["slot pull -> Absent (s)"] = wait(
                lambda: api.phases()["unit-2"] == "Absent", "unit-2 Absent", 60
            )
            slot(api.control_url, state, "insert")
            results["one unit: insert -> Running (s)"] = wait(
                lambda: api.phases()["unit-2"] == "Running", "unit-2 Running", 120
            )

            api.inject("bench-cut", {"type": "Partition", "selector": {"names": ["unit-3"]}})
            wait(lambda: api.fault("bench-cut")["status"]["phase"] == "Active", "Active", 30)
            results["partition -> Unreachable (s)"] = wait(
                lambda: api.phases()["unit-3"] == "Unreachable", "unit-3 Unreachable", 60
            )
            api.clear("bench-cut")
            wait(all_running, "unit-3 back", 120)

            api.inject("bench-outage", {"type": "BusbarOutage", "duration": f"{outage}s"})
            wait(lambda: api.fault("bench-outage")["status"]["phase"] == "Active", "Active", 30)
            wait(lambda: api.fault("bench-outage")["status"]["phase"] == "Cleared", "end", 120)
            results[f"{outage} s busbar outage: cleared -> all Running (s)"] = wait(
                all_running, "every unit after the outage", 600
            )
        finally:
            os.kill(up.pid, signal.SIGTERM)
            up.wait(timeout=60)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench faults")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--psu-watts", type=float, default=200.0)
    parser.add_argument("--outage", type=int, default=10, help="busbar outage, seconds")
    args = parser.parse_args(argv)
    results = run(args.units, args.speed, args.psu_watts, args.outage)
    print(f"faults: {args.units} units, speed {args.speed:g}, PSU {args.psu_watts:g} W")
    for what, seconds in results.items():
        print(f"  {what:<48} {seconds:8.2f}")
