"""A rack update through the modelled uplink, with and without peer-to-peer distribution.

Starts ``racklet up --units N --uplink-mbps U`` (each unit's path to the management side
crosses its 1 GbE port and the shared uplink, modelled by the twin's switch relay) with a
supply large enough that the busbar does not stagger power-on. Each round publishes a new
M MB payload (``racklet release publish --current``) three times and times, in one run:

- **one**: one unit alone power-cycled into it (its download has the uplink to itself):
  the time of a single unit's update boot;
- **bulk**: ``Rack.spec.peerToPeer: false``, every unit power-cycled at once: all N downloads
  share the uplink (its limit is ``N × M / goodput``);
- **p2p**: ``peerToPeer: true``, in waves as a rollout's canary and batches update
  (``--waves``, default ``1,3,12``): the first wave from the bulk server (nobody runs the
  release yet), each later one at once, from the units that run it by then (each unit
  fetches from up to four); timed from the first power-on to the last Running.

Besides wall time it reports the bytes the controller's bulk-target server sent in each
mode, summed from its access log (``serving <target> [start, end)`` in ``controller.log``),
and the CPU seconds of the rack's processes during each mode (twin with the units' download
processes, controller, supervisor: ``bench.rack_boot._rack_cpu``).
Ratios are of the same round (the machine is shared). Unit-to-unit transfers are not relayed
by the twin's switch yet (docs/peer-to-peer.md), so the p2p mode is bound by CPU there.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.rack_boot import _Rack, _rack_cpu
from racklet.boot import build_default_payload

_SERVED = re.compile(r"serving \S+\.payload\.bin \[(\d+), (\d+)\)")


def _bulk_bytes(state: Path) -> int:
    """Payload bytes the bulk-target server sent so far (its access log, summed)."""
    try:
        text = (state / "logs" / "controller.log").read_text(errors="replace")
    except OSError:
        return 0
    return sum(int(end) - int(start) for start, end in _SERVED.findall(text))


class _P2pRack(_Rack):
    def units_named(self) -> dict[str, tuple[str, str]]:
        items = self._api(60).get("/api/v1/computeunits").json()["items"]
        return {
            item["metadata"]["name"]: (
                str((item.get("status") or {}).get("phase")),
                str((item.get("status") or {}).get("osVersion")),
            )
            for item in items
        }

    def set_p2p(self, on: bool) -> None:
        answer = self._api(60).patch("/api/v1/racks/rack-1", json={"spec": {"peerToPeer": on}})
        answer.raise_for_status()

    def power_units(self, names: list[str], value: str) -> None:
        api = self._api(60)
        for name in names:
            api.patch(f"/api/v1/computeunits/{name}", json={"spec": {"power": value}})

    def wait_units(self, names: list[str], phase: str, version: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.units_named()
            if any(seen.get(n, ("", ""))[0] == "BootFailed" for n in names):
                raise RuntimeError(f"a unit failed to boot: {seen}")
            if version is not None:
                self._check_trials(version)
            if all(
                seen.get(n, ("", ""))[0] == phase and (version is None or seen[n][1] == version)
                for n in names
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{names} not {phase} {version or ''} within {timeout} s")

    def update(
        self, batches: list[list[str]], version: str, timeout: float
    ) -> tuple[float, dict[str, float]]:
        """Power ``batches`` off, then on one batch after the other (each once the previous
        runs ``version``); seconds from the first power-on to the last Running, and the CPU
        seconds the rack's processes used meanwhile, by role (``_rack_cpu``)."""
        every = [n for batch in batches for n in batch]
        self.power_units(every, "Off")
        self.wait_units(every, "Off", None, timeout)
        cpu = _rack_cpu(self.state)
        start = time.monotonic()
        for batch in batches:
            self.power_units(batch, "On")
            self.wait_units(batch, "Running", version, timeout)
        seconds = time.monotonic() - start
        after = _rack_cpu(self.state)
        return seconds, {role: after[role] - cpu[role] for role in after}


def _batches(names: list[str], waves: list[int]) -> list[list[str]]:
    out, start = [], 0
    for size in waves:
        out.append(names[start : start + size])
        start += size
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench p2p_boot")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--payload-mb", type=int, default=64)
    parser.add_argument("--uplink-mbps", type=float, default=1000.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--waves", default="1,3,12", help="units per wave in the p2p mode")
    args, _ = parser.parse_known_args(argv)
    waves = [int(w) for w in args.waves.split(",")]
    if sum(waves) != args.units or min(waves) < 1:
        raise SystemExit(f"p2p_boot: --waves {args.waves} must add up to --units {args.units}")
    size = args.payload_mb << 20
    goodput = args.uplink_mbps * 1e6 / 8 * 1448 / 1538  # TCP payload at line rate
    floor = args.units * size / goodput
    names = [f"unit-{n}" for n in range(1, args.units + 1)]
    results: dict[str, list[float]] = {"one": [], "bulk": [], "p2p": []}
    sent: dict[str, list[float]] = {"one": [], "bulk": [], "p2p": []}
    cpus: dict[str, list[float]] = {"one": [], "bulk": [], "p2p": []}
    with tempfile.TemporaryDirectory(prefix="racklet-bench-p2p-") as name:
        tmp = Path(name)
        psu = max(100.0, args.units * 15.3)
        extra = ("--uplink-mbps", f"{args.uplink_mbps:g}", "--psu-watts", f"{psu:g}")
        rack = _P2pRack(tmp / "state", args.units, args.speed, extra)
        try:
            rack.wait_all("Running", args.timeout)
            for index in range(args.rounds):
                plans = {
                    "one": (False, [names[:1]]),
                    "bulk": (False, [names]),
                    "p2p": (True, _batches(names, waves)),
                }
                order = list(plans) if index % 2 == 0 else list(reversed(plans))
                for mode in order:
                    on, batches = plans[mode]
                    version = f"3.{index}.{order.index(mode) + 1}"
                    release = tmp / f"release-{version}" / "payload.bin"
                    release.parent.mkdir()
                    release.write_bytes(build_default_payload(size, version))
                    rack.publish(version, release)
                    release.unlink()
                    rack.set_p2p(on)
                    before = _bulk_bytes(tmp / "state")
                    seconds, cpu = rack.update(batches, version, args.timeout)
                    results[mode].append(seconds)
                    sent[mode].append((_bulk_bytes(tmp / "state") - before) / size)
                    cpus[mode].append(sum(cpu.values()))
                    print(
                        f"  round {index + 1} {mode:<4}: {seconds:6.1f} s, bulk server sent "
                        f"{sent[mode][-1]:.2f} payloads, rack CPU {cpus[mode][-1]:.1f} s "
                        f"(twin {cpu['twin']:.1f}, controller {cpu['controller']:.1f})",
                        flush=True,
                    )
        finally:
            rack.stop()
    one, bulk, p2p = (statistics.median(results[m]) for m in ("one", "bulk", "p2p"))
    print(
        f"p2p_boot: {args.units} units x {args.payload_mb} MB, {args.uplink_mbps:g} Mbit/s "
        f"uplink (limit {floor:.1f} s); one unit {one:.1f} s; all at once without p2p "
        f"{bulk:.1f} s ({bulk / one:.2f}x one unit, {bulk / floor:.2f}x the uplink limit, "
        f"bulk server {statistics.median(sent['bulk']):.2f} payloads); with p2p (waves "
        f"{args.waves}) {p2p:.1f} s ({p2p / one:.2f}x one unit, bulk server "
        f"{statistics.median(sent['p2p']):.2f} payloads); rack CPU s one/bulk/p2p "
        + "/".join(f"{statistics.median(cpus[m]):.1f}" for m in ("one", "bulk", "p2p"))
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
