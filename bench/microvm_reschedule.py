"""MicroVM rescheduling on a real ``racklet up`` rack: a unit's power loss to the VM Running
on another unit, against the goal of two heartbeat intervals plus one VM boot.

A two-unit twin rack (``--speed``, TCG), the busybox image published through TUF, one
``restartPolicy: Always`` VM running ``sleep``. Each round cuts the power of the VM's unit
with a ``PowerLoss`` fault (created through the API in this process, so no CLI start-up is
counted), polls the VM every 50 ms through the API until it is Running on the other unit,
then clears the fault and waits for the unit to be Running again. Before each round QEMU
boots the same kernel and initrd by hand to the guest's init (one VM boot on this host,
now), so every round is compared with its own goal. The path measured is all of it: the
fault engine's cut, the BMC's power state and its event on the Redfish event stream the
controller follows, the unit reconciler's look, the MicroVM reconciler woken by the unit's
new phase, the early heartbeat the controller asks of the other unit's agent (its reply
carries the assignment), the TUF metadata refresh and the check of the image held ahead of
time, QEMU's boot and the Running report, sent when the guest's init runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._rack import start_rack
from bench.microvm import CACHE, _direct
from racklet import config as rack_config
from racklet.boot._payload import HEARTBEAT_INTERVAL_SECONDS
from racklet.cli._client import ApiClient
from racklet.errors import RackletError
from racklet.vm import build_image, download_kernel_deb

UNITS = ("unit-1", "unit-2")
POLL_SECONDS = 0.05


def _wait(what: str, check: Any, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"timed out waiting for {what}")


def _running_on(api: ApiClient, name: str, unit: str | None = None) -> str | None:
    status = api.get("microvms", name).get("status") or {}
    if status.get("phase") == "Running" and (unit is None or status.get("unit") == unit):
        return str(status["unit"])
    return None


def _units_running(api: ApiClient) -> bool:
    try:
        units = api.units()
    except RackletError:  # the controller is not listening yet
        return False
    return bool(units) and all((u.get("status") or {}).get("phase") == "Running" for u in units)


def _follow(api: ApiClient, vm: str, lost: str, other: str, started: float) -> dict[str, float]:
    """Poll until ``vm`` runs on ``other``; when each stage was first seen (s after the cut):
    ``lost`` not Running, the VM Scheduled on ``other``, Starting there, Running there."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 300
    while "Running" not in seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out; seen {seen}")
        status = api.get("microvms", vm).get("status") or {}
        unit = api.unit(lost).get("status") or {}
        now = time.perf_counter() - started
        if unit.get("phase") != "Running":
            seen.setdefault(f"{lost} {unit.get('phase')}", now)
        if status.get("unit") == other:
            seen.setdefault(str(status.get("phase")), now)
        time.sleep(POLL_SECONDS)
    return seen


def _power_loss(api: ApiClient, unit: str, n: int) -> str:
    name = f"cut-{n}"
    api.create(
        "faults",
        {
            "apiVersion": "racklet.dev/v1alpha1",
            "kind": "Fault",
            "metadata": {"name": name},
            "spec": {"type": "PowerLoss", "selector": {"names": [unit]}},
        },
    )
    return name


def run(rounds: int, speed: float, state: Path) -> None:
    image = build_image("busybox", "1.0.0", kernel=download_kernel_deb(CACHE))
    rack = start_rack(state, len(UNITS), speed)
    try:
        config_path = state / "racklet.yaml"
        _wait("racklet.yaml", config_path.exists, 120)
        config = rack_config.load(config_path)
        with ApiClient(config) as api:
            _wait("both units Running", lambda: _units_running(api), 180)
            (state / "busybox.img").write_bytes(image)
            publish = ("image", "publish", str(state / "busybox.img"))
            subprocess.run(
                [sys.executable, "-m", "racklet.cli", "--config", str(config_path), *publish],
                check=True,
                capture_output=True,
            )
            api.create(
                "microvms",
                {
                    "apiVersion": "racklet.dev/v1alpha1",
                    "kind": "MicroVM",
                    "metadata": {"name": "moving"},
                    "spec": {
                        "image": {"name": "busybox", "version": "1.0.0"},
                        "userData": "sleep 100000",
                        "restartPolicy": "Always",
                    },
                },
            )
            unit = _wait("the VM Running", lambda: _running_on(api, "moving"))
            moves: list[float] = []
            boots: list[float] = []
            stages: list[dict[str, float]] = []
            for n in range(rounds):
                with tempfile.TemporaryDirectory(prefix="racklet-bench-boot-") as tmp:
                    boots.append(asyncio.run(_direct(image, Path(tmp))))
                other = next(u for u in UNITS if u != unit)
                started = time.perf_counter()
                fault = _power_loss(api, unit, n)
                seen = _follow(api, "moving", unit, other, started)
                moves.append(seen["Running"])
                stages.append(seen)
                api.patch("faults", fault, {"spec": {"cleared": True}})
                _wait(f"{unit} Running again", lambda: _units_running(api), 180)
                marks = ", ".join(f"{k} {v:.2f}" for k, v in seen.items())
                print(
                    f"round {n + 1}: {unit} -> {other} in {moves[-1]:.2f} s "
                    f"(one boot now: {boots[-1]:.2f} s; first seen: {marks})",
                    flush=True,
                )
                unit = other
    finally:
        rack.terminate()
        rack.wait(timeout=60)
    for stage in ("Scheduled", "Starting"):
        times = [seen[stage] for seen in stages if stage in seen]
        if times:
            print(f"VM {stage} on the other unit after: median {statistics.median(times):.2f} s")
    interval = HEARTBEAT_INTERVAL_SECONDS / speed
    goals = [2 * interval + boot for boot in boots]
    within = sum(move <= goal for move, goal in zip(moves, goals, strict=True))
    excess = [move - boot for move, boot in zip(moves, boots, strict=True)]
    spread = statistics.stdev(moves) if rounds > 1 else 0.0
    print(f"{rounds} rounds, speed {speed:g}: heartbeat interval {interval:.2f} s (wall)")
    print(
        f"power loss to Running elsewhere: median {statistics.median(moves):.2f} s, "
        f"min {min(moves):.2f}, max {max(moves):.2f}, stdev {spread:.2f}  "
        f"{[round(m, 2) for m in moves]}"
    )
    print(
        f"one VM boot (QEMU by hand): median {statistics.median(boots):.2f} s  "
        f"{[round(b, 2) for b in boots]}"
    )
    print(
        f"goal (2 intervals + that round's boot): median {statistics.median(goals):.2f} s, "
        f"met in {within} of {rounds} rounds; beyond one boot: median "
        f"{statistics.median(excess):.2f} s {[round(e, 2) for e in excess]}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench microvm_reschedule")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("RACKLET_VM_ACCEL", "tcg")  # the rack inherits it
    with tempfile.TemporaryDirectory(prefix="racklet-bench-move-") as tmp:
        run(args.rounds, args.speed, Path(tmp) / "rack")
