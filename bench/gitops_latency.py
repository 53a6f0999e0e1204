"""GitOps latency: from ``git commit`` in a watched local repository to the change applied
and reported in the GitSource's status.

Setup: the starter repository of ``racklet init gitops`` (Rack + 5 ComputeUnits), the real
SQLite store in a temp dir, and the controller's own GitOps path: the GitSource reconciler in
a :class:`racklet.controller.Runtime` (with its informers and the production resync), woken by
the GitSource watcher (ref-file ``stat`` every ``--poll`` seconds), then ``git rev-parse`` /
``ls-tree`` / ``cat-file`` and the apply. Each
sample flips one unit's ``spec.power`` in its file, starts the clock, runs ``git commit``
(the commit's own time is included), and stops the clock when the store shows both the
unit's new power and ``status.lastAppliedCommit`` equal to the new commit.

Peers, in the same run: Flux (minimum ``interval`` 60 s) and Argo CD (default poll 180 s)
discover a commit by polling, so a commit made at a random moment waits interval/2 on average
and a whole interval at worst, plus the sync itself. The sync cost is measured here, on the
same machine in the same run (one ``reconcile`` of a new commit without the watcher), and
added to each peer's wait; the results are ratios of Racklet's latency to theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from racklet.api import ComputeUnit, GitSource, validate
from racklet.controller import Registry, Runtime
from racklet.controller._gitops import GitSources
from racklet.gitops import (
    GitSourceReconciler,
    StarterUnit,
    StoreApplier,
    starter_files,
    write_starter,
)
from racklet.store import SqliteStore

PEERS = {"Flux (interval 60 s)": 60.0, "Argo CD (poll 180 s)": 180.0}


def _commit(repo: Path, unit: str, power: str) -> str:
    path = repo / "rack" / "units" / f"{unit}.yaml"
    text = path.read_text()
    other = "'Off'" if power == "On" else "'On'"
    path.write_text(text.replace(f"power: {other}", f"power: '{power}'"))
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", f"{unit} {power}"], check=True)
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


async def _applied(store: SqliteStore, unit: str, power: str, commit: str) -> None:
    while True:
        source = await store.get(GitSource, "rack")
        done = source.status.last_applied_commit == commit
        if done and (await store.get(ComputeUnit, unit)).spec.power == power:
            return
        await asyncio.sleep(0.005)


async def _run(samples: int, poll: float, workdir: Path) -> dict[str, list[float]]:
    repo = workdir / "repo"
    units = [StarterUnit(f"unit-{i}", i, f"https://127.0.0.1:{9000 + i}") for i in range(1, 6)]
    write_starter(repo, starter_files(repo, rack="rack-1", psu_watts=100, units=units))
    store = SqliteStore(workdir / "store.db")
    applier = StoreApplier(store)
    spec = {"localPath": str(repo), "path": "rack", "interval": "10m", "prune": True}
    await store.create(validate(GitSource, {"metadata": {"name": "rack"}, "spec": spec}))
    results: dict[str, list[float]] = {"watch": [], "sync": []}

    # the sync alone (what a polling peer pays after its wait), no watcher running
    reconciler = GitSourceReconciler(applier)
    await reconciler.reconcile("rack")
    for i in range(samples):
        power = "Off" if i % 2 == 0 else "On"
        await asyncio.to_thread(_commit, repo, "unit-3", power)
        start = time.perf_counter()
        await reconciler.reconcile("rack")
        results["sync"].append(time.perf_counter() - start)

    registry = Registry()
    runtime = Runtime(registry, store)
    sources = GitSources(store, workdir / "cache", runtime.enqueue, poll=poll)
    registry.register(GitSource, sources)
    await runtime.start()
    await sources.start()
    try:
        last = (await store.get(GitSource, "rack")).status.last_applied_commit
        await asyncio.wait_for(_wait_commit(store, last), 30)
        for i in range(samples):
            power = "Off" if i % 2 == 0 else "On"
            start = time.perf_counter()
            commit = await asyncio.to_thread(_commit, repo, "unit-2", power)
            await asyncio.wait_for(_applied(store, "unit-2", power, commit), 60)
            results["watch"].append(time.perf_counter() - start)
    finally:
        await sources.stop()
        await runtime.stop()
        await store.close()
    return results


async def _wait_commit(store: SqliteStore, commit: str | None) -> None:
    while True:
        if (await store.get(GitSource, "rack")).status.last_applied_commit == commit:
            return
        await asyncio.sleep(0.01)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench gitops_latency")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.1, help="ref stat interval (s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="racklet-gitops-bench-") as tmp:
        results = asyncio.run(_run(args.samples, args.poll, Path(tmp)))
    watch, sync = results["watch"], results["sync"]
    p50, p95, worst = _p(watch, 0.5), _p(watch, 0.95), max(watch)
    sync_mean = statistics.mean(sync)
    print(
        f"GitOps latency, git commit -> applied and in status ({len(watch)} commits, "
        f"poll {args.poll:g} s)"
    )
    print(
        f"  racklet watch: p50 {p50 * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms  "
        f"max {worst * 1000:.0f} ms  (goal <= 2000 ms: {'met' if worst <= 2 else 'NOT met'})"
    )
    print(f"  sync alone (measured, same run): mean {sync_mean * 1000:.0f} ms")
    for name, interval in PEERS.items():
        mean, peer_worst = interval / 2 + sync_mean, interval + sync_mean
        print(
            f"  {name}: expected mean {mean:.1f} s, worst {peer_worst:.1f} s -> racklet p50 is "
            f"1/{mean / p50:,.0f} of its mean, racklet max 1/{peer_worst / worst:,.0f} of its worst"
        )
    return 0
