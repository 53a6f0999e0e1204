"""Rack boot time through the switch's modelled uplink vs the uplink's own limit.

Starts ``racklet up --units N --uplink-mbps U`` (every unit's download crosses its 1 GbE port
and the shared uplink, both modelled by the twin's switch relay), waits for N/N Running, then
per round publishes a new M MB OS payload (``racklet release publish --current``), powers the
rack off, and times power-on until every unit is Running the new version: each unit streamed
M MB through the uplink into its inactive A/B slot (hashing it), try-booted and committed it.
The floor is the uplink's limit, ``N × M / goodput`` seconds, where the goodput is what TCP
carries at the line rate ``U`` Mbit/s (1448 payload bytes per 1538 on the wire: 117.7 MB/s
on 1 GbE, the issue's "119 MB/s"); a ratio near 1 means the model, not the software, is the
limit. ``--speed`` 10 by default: simulated boot steps are short next to the transfer, and the
trial's health deadline (120 simulated seconds) is still 12 s of wall time on a loaded machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.rack_boot import STEPS, TrialFellBack, _Rack, spread, timelines
from racklet.boot import build_default_payload

UNIT_BUDGET_WATTS = 15.3
"""What the busbar budget reserves for a unit powering on (the Pi 4 profile's 5.1 V × 3 A):
with ``racklet up``'s 100 W supply, 16 units power on in waves of six, each waiting for the
last to settle, and the uplink idles between them (measured: the median unit started its
bootstrap 46 s after power-on)."""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench switch_boot")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--payload-mb", type=int, default=256)
    parser.add_argument("--uplink-mbps", type=float, default=1000.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--psu-watts",
        type=float,
        default=None,
        help="busbar supply (default: every unit's 15.3 W power-on budget at once, so the "
        "budget does not stagger the rack into waves)",
    )
    args, _ = parser.parse_known_args(argv)
    size = args.payload_mb << 20
    goodput = args.uplink_mbps * 1e6 / 8 * 1448 / 1538  # TCP payload at line rate: 117.7 MB/s
    floor = args.units * size / goodput
    boots: list[float] = []
    steps: dict[str, list[float]] = {label: [] for label, _, _ in STEPS}
    with tempfile.TemporaryDirectory(prefix="racklet-bench-switchboot-") as name:
        tmp = Path(name)
        psu = args.psu_watts or max(100.0, args.units * UNIT_BUDGET_WATTS)
        extra = ("--uplink-mbps", f"{args.uplink_mbps:g}", "--psu-watts", f"{psu:g}")
        rack = _Rack(tmp / "state", args.units, args.speed, extra)
        try:
            started = time.monotonic()
            rack.wait_all("Running", args.timeout)
            print(f"switch_boot: first up {time.monotonic() - started:.1f} s", flush=True)
            for index in range(args.rounds):
                version = f"2.0.{index + 1}"
                release = tmp / f"release-{version}" / "payload.bin"
                release.parent.mkdir()
                release.write_bytes(build_default_payload(size, version))
                rack.publish(version, release)
                release.unlink()
                try:
                    seconds, cpu, started_at = rack.timed_update_by_role(version, args.timeout)
                except TrialFellBack as exc:
                    print(f"  round {index + 1} not counted: {exc}", flush=True)
                    continue
                boots.append(seconds)
                assert rack.watch is not None
                for unit, found in timelines(
                    tmp / "state" / "logs" / "twin.log", started_at
                ).items():
                    found["power-on"] = started_at
                    running = rack.watch.running_at.get((unit, version))
                    if running is not None:
                        found["running"] = running
                    for label, first, last in STEPS:
                        if first in found and last in found:
                            steps[label].append(found[last] - found[first])
                roles = ", ".join(f"{role} {value:.0f}" for role, value in cpu.items())
                print(
                    f"  round {index + 1}: {seconds:.1f} s to {args.units}/{args.units} Running "
                    f"{version} ({sum(cpu.values()):.0f} CPU s: {roles}), "
                    f"{seconds / floor:.2f}x the uplink's limit",
                    flush=True,
                )
        finally:
            rack.stop()
    if not boots:
        raise SystemExit("switch_boot: no round counted (every round had a unit fall back)")
    best = min(boots)
    median, low, high = spread(boots)
    print(
        f"switch_boot: {args.units} units x {args.payload_mb} MB through a "
        f"{args.uplink_mbps:g} Mbit/s uplink: limit {floor:.1f} s, median {median:.1f} s "
        f"(min {low:.1f}, max {high:.1f}), ratio {median / floor:.2f}x (best {best / floor:.2f}x)"
    )
    print("where a unit's update boot goes (per unit and round: median, max):")
    for label, values in steps.items():
        if values:
            print(f"  {label:<52} {statistics.median(values):7.2f} s  {max(values):7.2f} s")
