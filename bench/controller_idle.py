"""An idle rack's controller: CPU seconds and unit reconciles per minute, nothing asked of it.

What every rack the docs tests start does most of its life: ``racklet up --units N --speed S``
(a real rack: twin, BMCs, the units' OS agents heartbeating), wait until every unit is
Running, let it settle, then count over ``--seconds`` the controller's CPU (utime + stime
from ``/proc``, its process and its threads) and the unit reconciles it ran (its own
``/metrics``: ``racklet_controller_reconcile_duration_seconds_count{kind="ComputeUnit"}``),
and the twin's CPU beside it. With ``--compare DIR`` the same is done with another tree's
``src/`` (a ``git archive`` of a base commit) on ``PYTHONPATH``, the two sides alternating
round by round (odd rounds: this tree first), so a busy moment of the shared machine falls
on both. Each round starts a fresh rack in a fresh state dir and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._rack import rack_api, start_rack
from bench.rack_boot import _rack_cpu

_RECONCILES = re.compile(
    r'^racklet_controller_reconcile_duration_seconds_count\{kind="ComputeUnit"\} (\S+)$', re.M
)


def _wait_running(api: httpx.Client, units: int, deadline: float) -> None:
    phases: list[str] = []
    while time.monotonic() < deadline:
        try:
            items = api.get("/api/v1/computeunits").json()["items"]
            phases = [str((i.get("status") or {}).get("phase")) for i in items]
        except (httpx.HTTPError, ValueError, KeyError):
            phases = []
        if len(phases) == units and all(p == "Running" for p in phases):
            return
        time.sleep(0.5)
    raise RuntimeError(f"not all {units} units Running in time: {phases}")


def _reconciles(api: httpx.Client) -> float:
    found = _RECONCILES.search(api.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


def one_round(
    units: int, speed: float, seconds: float, settle: float, tree: str | None
) -> dict[str, float]:
    """One fresh rack (with ``tree``'s ``src/`` first on ``PYTHONPATH``, if given)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(tree) / "src"), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="racklet-idle-") as tmp:
        state = Path(tmp) / "rack"
        proc = start_rack(state, units, speed, env=env)
        api: httpx.Client | None = None
        try:
            deadline = time.monotonic() + 180
            api = rack_api(state, deadline - time.monotonic())
            _wait_running(api, units, deadline)
            time.sleep(settle)
            cpu, done = _rack_cpu(state), _reconciles(api)
            time.sleep(seconds)
            after, done_after = _rack_cpu(state), _reconciles(api)
        finally:
            if api is not None:
                api.close()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    per_minute = 60.0 / seconds
    return {
        "controller_cpu_s": (after["controller"] - cpu["controller"]) * per_minute,
        "twin_cpu_s": (after["twin"] - cpu["twin"]) * per_minute,
        "unit_reconciles": (done_after - done) * per_minute,
    }


def _fmt(values: list[float], digits: int = 2) -> str:
    return (
        f"median {statistics.median(values):.{digits}f} "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f})"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench controller_idle")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, per round")
    parser.add_argument("--settle", type=float, default=5.0, help="after all Running, per round")
    parser.add_argument("--rounds", type=int, default=3, help="per side")
    parser.add_argument("--compare", help="another tree whose src/ to measure the same way")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    sides: dict[str, str | None] = {"this tree": None}
    if args.compare:
        sides[f"compare ({args.compare})"] = args.compare
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    load = os.getloadavg()[0]
    for n in range(args.rounds):
        order = list(sides.items()) if n % 2 == 0 else list(reversed(sides.items()))
        for side, tree in order:
            results[side].append(one_round(args.units, args.speed, args.seconds, args.settle, tree))
    print(
        f"{args.units} units at speed {args.speed:g}, idle, {args.seconds:g} s per round, "
        f"{args.rounds} round(s) per side, load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    for side, rounds in results.items():
        print(f"{side}:")
        print(f"  controller CPU s per minute   {_fmt([r['controller_cpu_s'] for r in rounds])}")
        print(f"  unit reconciles per minute    {_fmt([r['unit_reconciles'] for r in rounds], 0)}")
        print(f"  twin CPU s per minute         {_fmt([r['twin_cpu_s'] for r in rounds])}")
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
