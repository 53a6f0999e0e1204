"""One controller runtime managing N units (default 10,000): convergence, idle CPU, memory.

The hardware is an in-process fake: every unit's :class:`racklet.redfish.RedfishClient` talks
through one ``httpx.MockTransport`` that answers the Redfish calls the reconciler makes
(session login, System, Chassis, EnvironmentMetrics, Reset) from a dict of power states, as a
BMC would. So the real client, reconciler, runtime and SQLite store run; only the network
and the boards are missing. Reports: time for a fleet-wide spec change (every unit
``spec.power: Off``) to be observed as done (``observedGeneration`` and ``powerState Off``),
CPU while idle (``/proc/self/stat`` over ``--idle`` s), RSS growth per unit, and the time
from a write straight to the store (a label, as a script or another controller would write it:
no API, nobody calls ``enqueue``) to the reconciler starting on that unit (``--samples``
writes, 20 ms apart; with a runtime that only resyncs this is up to one resync period). The spec
writes are issued ``--writers`` at a time, as an API server serving that many clients would
(the store group-commits what arrives together). Resync uses the runtime's production
defaults (``--resync 1 --resync-rate 50``) unless told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ComputeUnitStatus,
    ObjectMeta,
    Rack,
    RackSpec,
)
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry, Registry, Runtime
from racklet.redfish import RedfishClient
from racklet.store import Conflict, SqliteStore


class FakeFleet:
    """The BMCs of the whole fleet, answering through one mock transport."""

    def __init__(self) -> None:
        self.power: dict[str, str] = {}
        self.resets = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/Sessions"):
            return httpx.Response(201, json={}, headers={"X-Auth-Token": "t", "Location": path})
        parts = path.split("/")
        if path.endswith("/Actions/ComputerSystem.Reset"):
            name = parts[4]
            reset = json.loads(request.content)["ResetType"]
            self.power[name] = "Off" if reset in ("GracefulShutdown", "ForceOff") else "On"
            self.resets += 1
            return httpx.Response(204)
        if path.endswith("/EnvironmentMetrics"):
            on = self.power[parts[4]] == "On"
            return httpx.Response(
                200,
                json={
                    "PowerWatts": {"Reading": 3.5 if on else 0.2},
                    "EnergyJoules": {"Reading": 100.0},
                    "TemperatureCelsius": {"Reading": 41.0},
                },
            )
        name = parts[4]
        if parts[3] == "Chassis":
            return httpx.Response(
                200, json={"Id": name, "Status": {"State": "Enabled"}, "MaxPowerWatts": 7.0}
            )
        state = self.power[name]
        return httpx.Response(
            200,
            json={
                "Id": name,
                "PowerState": state,
                "BootProgress": {"LastState": "OSRunning" if state == "On" else "None"},
                "Status": {"State": "Enabled", "Health": "OK"},
            },
        )


class Progress:
    """The reconciler's observer: counts units whose status shows the wanted state."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.done: set[str] = set()
        self.generation = 1

    def unit(self, name: str, status: ComputeUnitStatus) -> None:
        self.seen.add(name)
        if status.observed_generation == self.generation and status.power_state == "Off":
            self.done.add(name)


class Timed:
    """Wraps the reconciler: wakes whoever waits for a unit's next reconcile to start."""

    def __init__(self, inner: ComputeUnitReconciler) -> None:
        self.inner = inner
        self.waiting: dict[str, asyncio.Future[float]] = {}

    async def reconcile(self, name: str) -> float | None:
        waiter = self.waiting.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.perf_counter())
        return await self.inner.reconcile(name)


async def _write_to_act(store: SqliteStore, timed: Timed, names: list[str]) -> list[float]:
    """Per unit: seconds from a label written straight to the store to its reconcile."""
    loop = asyncio.get_running_loop()

    async def one(name: str) -> float:
        unit = await store.get(ComputeUnit, name)
        unit.metadata.labels["bench"] = "touched"
        waiter = loop.create_future()
        timed.waiting[name] = waiter
        written = time.perf_counter()
        while True:
            try:
                await store.update(unit)
                break
            except Conflict:
                unit = await store.get(ComputeUnit, name)
                unit.metadata.labels["bench"] = "touched"
        started: float = await asyncio.wait_for(waiter, 900)
        return max(0.0, started - written)

    tasks = []
    for name in names:
        tasks.append(asyncio.create_task(one(name)))
        await asyncio.sleep(0.02)
    return sorted(await asyncio.gather(*tasks))


def _cpu_seconds() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _until(check: object, limit: float) -> float:
    started = time.perf_counter()
    while not check():  # type: ignore[operator]
        if time.perf_counter() - started > limit:
            raise SystemExit("did not converge in time")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def run(
    units: int,
    idle: float,
    resync: float,
    rate: float,
    writers: int,
    directory: Path,
    samples: int = 100,
) -> dict[str, float]:
    rss_before = _rss_bytes()
    store = SqliteStore(directory / "store.db")
    fleet = FakeFleet()
    transport = httpx.MockTransport(fleet.handle)
    names = [f"unit-{i:05d}" for i in range(units)]
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=1e9)))
    for index, name in enumerate(names):
        fleet.power[name] = "On"
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name),
                spec=ComputeUnitSpec(slot=1 + index % 16, bmc=BmcRef(url="https://bmc.test")),
            )
        )
    clients = {
        name: RedfishClient(
            "https://bmc.test", "u", "p", ca_bundle=Path("/unused"), transport=transport
        )
        for name in names
    }
    progress = Progress()
    registry = Registry()
    reconciler = ComputeUnitReconciler(
        store, clients, HeartbeatRegistry(), rack_name="rack-1", observer=progress
    )
    timed = Timed(reconciler)
    registry.register(ComputeUnit, timed)
    runtime = Runtime(registry, store, resync_seconds=resync, resync_rate=rate)
    await runtime.start()
    try:
        first = await _until(lambda: len(progress.seen) == units, 600)
        await asyncio.sleep(2)  # let the first wave's stragglers finish
        cpu, wall = _cpu_seconds(), time.perf_counter()
        await asyncio.sleep(idle)
        idle_share = (_cpu_seconds() - cpu) / (time.perf_counter() - wall)
        rss_after = _rss_bytes()

        progress.generation = 2
        started = time.perf_counter()
        commits = store.commits
        lanes = asyncio.Semaphore(writers)

        async def power_off(unit: ComputeUnit) -> None:
            async with lanes:
                while True:  # as an API client would: change, write; on Conflict read again
                    unit.spec.power = "Off"
                    try:
                        await store.update(unit)
                    except Conflict:  # a reconciler's status write came first
                        unit = await store.get(ComputeUnit, unit.metadata.name)
                        continue
                    break
            runtime.enqueue("ComputeUnit", unit.metadata.name)

        await asyncio.gather(*(power_off(unit) for unit in await store.list(ComputeUnit)))
        written = time.perf_counter() - started
        spec_commits = store.commits - commits
        await _until(lambda: len(progress.done) == units, 600)
        converged = time.perf_counter() - started
        await asyncio.sleep(2)
        step = max(1, units // samples)
        latencies = await _write_to_act(store, timed, names[::step][:samples])
    finally:
        await runtime.stop()
        for c in clients.values():
            await c.aclose()
        await store.close()
    return {
        "units": units,
        "first_pass_s": first,
        "spec_writes_s": written,
        "converge_s": converged,
        "idle_cpu_share": idle_share,
        "rss_per_unit_kib": (rss_after - rss_before) / units / 1024,
        "resets": fleet.resets,
        "resync_period_s": runtime.resync_period(units),
        "spec_commits": spec_commits,
        "write_to_act_p50_ms": 1000 * latencies[len(latencies) // 2],
        "write_to_act_p99_ms": 1000
        * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "write_to_act_max_ms": 1000 * latencies[-1],
        "samples": len(latencies),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench control_plane_scale")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU sampling")
    parser.add_argument("--resync", type=float, default=1.0, help="shortest resync period (s)")
    parser.add_argument("--resync-rate", type=float, default=50.0, help="resync objects per s")
    parser.add_argument("--writers", type=int, default=64, help="spec writes in flight")
    parser.add_argument("--samples", type=int, default=100, help="store writes timed to act")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        result = asyncio.run(
            run(
                args.units,
                args.idle,
                args.resync,
                args.resync_rate,
                args.writers,
                Path(directory),
                args.samples,
            )
        )
    print(
        f"control_plane_scale: {result['units']} units (in-process Redfish fakes, SQLite, "
        f"resync {args.resync:g} s at least, {args.resync_rate:g}/s at most: every "
        f"{result['resync_period_s']:g} s; {args.writers} writers)\n"
        f"  first pass over all units      {result['first_pass_s']:8.1f} s\n"
        f"  fleet-wide spec change written {result['spec_writes_s']:8.1f} s"
        f" ({result['spec_commits']:.0f} commits, with status writes)\n"
        f"  ... and converged (goal 30 s)  {result['converge_s']:8.1f} s\n"
        f"  idle CPU (goal < 10 %)         {100 * result['idle_cpu_share']:8.1f} % of one core\n"
        f"  memory per unit                {result['rss_per_unit_kib']:8.1f} KiB\n"
        f"  resets sent                    {result['resets']:8d}\n"
        f"  store write -> reconcile       p50 {result['write_to_act_p50_ms']:.0f} ms, "
        f"p99 {result['write_to_act_p99_ms']:.0f} ms, max {result['write_to_act_max_ms']:.0f} ms"
        f" ({result['samples']:.0f} writes straight to the store)"
    )
