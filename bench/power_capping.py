"""Power capping: how fast a rack answers a brown-out, and whether its busbar ever exceeds.

A real rack on the twin (the controller process, the hardware side's BMCs, RMC and OS agents
in this process, as ``tests/integration/test_power_capping.py`` runs it), three units stressed
to 100 % (about 19.5 W) with power priorities 300/200/100. Each round declares a ``BrownOut``
Fault to ``--watts`` through the API and times, from the moment the twin's PSU rating drops:
the first cap set through a BMC (``Controls/PowerLimit``), and the end of the sag (every unit
capped as planned, none held by the under-voltage throttle any more); then clears the fault
and times until every cap is lifted. Wall seconds and the twin's simulated seconds; the
busbar's true peak above its rating (ground truth) over the whole run. While the brown-out
holds (``--hold`` wall seconds after the sag ended) it also counts, from the twin's units,
every cap lifted (a flap: the plan let go of a cap it needs) and every cap set or moved, and
the physics ticks the busbar sagged in. Run:
``python -m bench power_capping [--rounds 3] [--watts 16] [--speed 10] [--hold 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from racklet.cli._prepare import prepare
from racklet.hardware_side._process import run
from racklet.net import client_context
from racklet.twin._rack import TwinRack
from racklet.twin._unit import TwinUnit

PRIORITIES = {"unit-1": 300, "unit-2": 200, "unit-3": 100}


async def _until(check: Callable[[], object], what: str, within: float = 120.0) -> float:
    """Poll ``check`` (plain or async) every 10 ms; the wall time it first held."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.perf_counter()
        await asyncio.sleep(0.01)
    raise TimeoutError(what)


class _CapWatch:
    """Polls the twin's units every 10 ms: each change of a unit's cap while it runs."""

    def __init__(self, units: dict[str, TwinUnit]) -> None:
        self._units = units
        self.lifts = 0
        self.sets = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        last = {name: u.power_limit_watts for name, u in self._units.items()}
        while True:
            await asyncio.sleep(0.01)
            for name, unit in self._units.items():
                now = unit.power_limit_watts
                if now != last[name]:
                    self.lifts += now is None
                    self.sets += now is not None
                    last[name] = now

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _rounds(
    root: Path, rounds: int, watts: float, speed: float, hold: float
) -> list[dict[str, float]]:
    config = prepare(
        root, units=3, speed=speed, profile="raspberry-pi-4", psu_rated_watts=100.0,
        payload_bytes=65536,
    )  # fmt: skip
    controller = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "racklet.controller", "--state-dir", config.state_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = asyncio.Event()
    racks: list[TwinRack] = []
    twin = asyncio.create_task(run(config, stop, ready=racks.append))
    api = httpx.AsyncClient(
        base_url=config.api.url,
        verify=client_context(config.layout.ca_cert),
        headers={"Authorization": f"Bearer {config.api.token}"},
    )
    results = []
    try:
        await _until(lambda: racks, "the hardware side")
        rack = racks[0]
        units = rack.units

        async def running() -> bool:
            try:
                items = (await api.get("/api/v1/computeunits")).json()["items"]
            except (httpx.HTTPError, KeyError, ValueError):
                return False
            phases = [(i.get("status") or {}).get("phase") for i in items]
            return len(phases) == 3 and all(p == "Running" for p in phases)

        await _until(running, "three running units")
        for name, priority in PRIORITIES.items():
            await api.patch(
                f"/api/v1/computeunits/{name}", json={"spec": {"powerPriority": priority}}
            )
            await api.post(
                f"/api/v1/computeunits/{name}/stress", json={"cpuPercent": 100, "seconds": 86400}
            )
        await _until(lambda: rack.busbar.power_watts > 17.0, "three busy units")
        for n in range(rounds):
            name = f"sag-{n}"
            body = {
                "apiVersion": "racklet.dev/v1alpha1",
                "kind": "Fault",
                "metadata": {"name": name},
                "spec": {"type": "BrownOut", "params": {"watts": watts}},
            }
            (await api.post("/api/v1/faults", json=body)).raise_for_status()
            applied = await _until(lambda: rack.busbar.rated_watts == watts, "the brown-out")
            watch = _CapWatch(units)
            sags0 = rack.busbar.sags
            sim0 = rack.clock.monotonic()
            first = await _until(
                lambda: any(u.power_limit_watts is not None for u in units.values()), "a cap"
            )
            sim1 = rack.clock.monotonic()
            fits = await _until(
                lambda: (
                    units["unit-3"].power_limit_watts is not None
                    and not any(u.under_voltage for u in units.values())
                ),
                "the sag to end",
            )
            sim2 = rack.clock.monotonic()
            await asyncio.sleep(hold)  # hold it a while: no new sag, no cap let go
            await watch.stop()
            sag_ticks = rack.busbar.sags - sags0
            cleared = time.perf_counter()
            reply = await api.patch(f"/api/v1/faults/{name}", json={"spec": {"cleared": True}})
            reply.raise_for_status()
            lifted = await _until(
                lambda: all(u.power_limit_watts is None for u in units.values()), "caps lifted"
            )
            await _until(lambda: rack.busbar.power_watts > 17.0, "full power again")
            results.append(
                {
                    "first_cap": first - applied,
                    "first_cap_sim": sim1 - sim0,
                    "fits": fits - applied,
                    "fits_sim": sim2 - sim0,
                    "lifted": lifted - cleared,
                    "peak_over": rack.busbar.peak_over_watts,
                    "lifts": float(watch.lifts),
                    "sets": float(watch.sets),
                    "sag_ticks": float(sag_ticks),
                    "brownouts": float(rack.busbar.brownouts),
                }
            )
    finally:
        await api.aclose()
        stop.set()
        await twin
        controller.terminate()
        await controller.wait()
    return results


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench power_capping")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--watts", type=float, default=16.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=5.0)
    args = parser.parse_args(list(argv))
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(
            _rounds(Path(tmp) / "rack", args.rounds, args.watts, args.speed, args.hold)
        )
    print(f"power capping: 3 units at 100 %, brown-out to {args.watts:g} W, speed {args.speed:g}")
    print(f"{'round':>5} {'1st cap s':>10} {'(sim s)':>8} {'fits s':>7} {'(sim s)':>8}", end="")
    print(f" {'lifted s':>9} {'cap lifts':>9} {'caps set':>8} {'sag ticks':>9}")
    for n, r in enumerate(results, 1):
        print(
            f"{n:5d} {r['first_cap']:10.2f} {r['first_cap_sim']:8.1f} {r['fits']:7.2f} "
            f"{r['fits_sim']:8.1f} {r['lifted']:9.2f} {r['lifts']:9.0f} {r['sets']:8.0f} "
            f"{r['sag_ticks']:9.0f}"
        )
    for key in ("first_cap", "fits", "lifted"):
        values = [r[key] for r in results]
        print(f"{key}: median {statistics.median(values):.2f} s, max {max(values):.2f} s")
    print(
        f"busbar peak above its rating (ground truth): {results[-1]['peak_over']:.3f} W; "
        f"brown-outs: {results[-1]['brownouts']:.0f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
