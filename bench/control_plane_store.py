"""Store throughput: creates and updates per second, SQLite against etcd in the same run.

Both are the real stores (:class:`racklet.store.SqliteStore` in a temp dir, with
``synchronous=FULL``; :class:`racklet.store.EtcdStore` against a real etcd from Debian's
``etcd-server`` on loopback, data in a temp dir, fsync on). Each phase runs ``--ops`` writes,
first one at a time (latency-bound), then ``--concurrency`` in flight (what the controller does
with 64 reconcile slots). The result is etcd's rate as a ratio of SQLite's.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.store import EtcdStore, SqliteStore, Store


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_etcd(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("etcd") or "/usr/bin/etcd"
    client, peer = f"http://127.0.0.1:{_port()}", f"http://127.0.0.1:{_port()}"
    process = subprocess.Popen(
        [binary, "--name=bench", f"--data-dir={directory}", f"--listen-client-urls={client}",
         f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
         f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=bench={peer}",
         "--log-level=error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(client + "/health", timeout=1).json().get("health") == "true":
                return process, client
        except (httpx.HTTPError, ValueError):
            time.sleep(0.05)
    process.kill()
    raise SystemExit("etcd did not start")


def _unit(name: str) -> ComputeUnit:
    return ComputeUnit(
        metadata=ObjectMeta(name=name, labels={"racklet.dev/rack": "rack-1"}),
        spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://127.0.0.1:1")),
    )


async def _rate(ops: int, concurrency: int, work: Callable[[int], Awaitable[object]]) -> float:
    queue = iter(range(ops))

    async def worker() -> None:
        for index in queue:
            await work(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ops / (time.perf_counter() - started)


async def measure(store: Store, ops: int, concurrency: int) -> dict[str, float]:
    results: dict[str, float] = {}
    for width in (1, concurrency):
        tag = f"x{width}"

        async def create(index: int, tag: str = tag) -> None:
            await store.create(_unit(f"{tag}-{index}"))

        async def update(index: int, tag: str = tag) -> None:
            unit = await store.get(ComputeUnit, f"{tag}-{index}")
            unit.spec.power = "Off"
            await store.update(unit)

        results[f"create {tag}"] = await _rate(ops, width, create)
        results[f"update {tag}"] = await _rate(ops, width, update)
    return results


async def run(ops: int, concurrency: int, directory: Path) -> dict[str, dict[str, float]]:
    etcd, url = start_etcd(directory / "etcd")
    try:
        sqlite: Store = SqliteStore(directory / "store.db")
        remote: Store = EtcdStore(url)
        try:
            return {
                "sqlite": await measure(sqlite, ops, concurrency),
                "etcd": await measure(remote, ops, concurrency),
            }
        finally:
            await sqlite.close()
            await remote.close()
    finally:
        etcd.terminate()
        etcd.wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench control_plane_store")
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        result = asyncio.run(run(args.ops, args.concurrency, Path(directory)))
    print(f"control_plane_store: {args.ops} writes per phase, ops/s (etcd / sqlite)")
    for phase in result["sqlite"]:
        lite, etcd = result["sqlite"][phase], result["etcd"][phase]
        print(f"  {phase:10s} sqlite {lite:8.0f}  etcd {etcd:8.0f}  ratio {etcd / lite:5.2f}")
