"""The units' download path alone: N threads of one process, as the twin runs them.

Where ``rack_boot`` times a whole update boot, this isolates the part that dominates it: N
units streaming the same 64 MB target from Racklet's bulk-target server (in its own process,
as in the controller) over mutual TLS, each through the bootstrap's real code
(``StreamFetcher`` → ``StreamCheck`` → ``SlotWriter``, the ``_Targets.to_file`` of a boot),
all in one Python process like the twin's units. Variants drop one stage so its cost shows:
``full`` (read, hash, write, fsync), ``nowrite`` (read and hash), ``nohash`` (read and write);
the peer is N ``curl | sha256sum`` pipelines against the same server. Rounds rotate the
order; reported are the median wall seconds and the client's and server's CPU seconds.

    python -m bench unit_download [--units 5] [--rounds 5] [--mb 64]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from bench.boot_server import _start_bulk
from bench.boot_tools import Tls, cpu_seconds, curl_args, make_tls
from racklet.boot._slots import SlotWriter
from racklet.boot._stream_fetch import StreamFetcher
from racklet.boot._tuf_api import TargetFile
from racklet.boot._tuf_client import _Targets
from racklet.boot._types import BootLimits
from racklet.net import client_context

VARIANTS = ("full", "nowrite", "nohash", "procs")


def _unit_download(
    url: str, tls: Tls, info: TargetFile, directory: Path, variant: str, limits: BootLimits
) -> None:
    fetcher = StreamFetcher(
        ssl_context=client_context(tls.ca, tls.client_cert, tls.client_key),
        connect_timeout=10,
        read_timeout=30,
    )
    targets = _Targets(fetcher, url, False, limits)
    try:
        if variant == "full":
            targets.to_file(info, directory).unlink()
        elif variant == "nowrite":
            targets._stream(info, lambda data: None)
        else:  # nohash: what the write costs on top of the read, without the verdict
            with SlotWriter(directory, direct=True) as writer:
                for chunk in fetcher.fetch(f"{url}{info.path}"):
                    writer.write(chunk)
                writer.keep().unlink()
    finally:
        fetcher.close()


def _timed(
    work: Callable[[], None], server_pid: int, workers: list[int]
) -> tuple[float, float, float]:
    """(wall s, the client's CPU s: this process, its pool workers and reaped children;
    server CPU s)."""
    server = cpu_seconds([server_pid])
    cpu = time.process_time() + _children_cpu() + cpu_seconds(workers)
    start = time.monotonic()
    work()
    return (
        time.monotonic() - start,
        time.process_time() + _children_cpu() + cpu_seconds(workers) - cpu,
        cpu_seconds([server_pid]) - server,
    )


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench unit_download")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args, _ = parser.parse_known_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    limits = BootLimits()
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in [*variants, "peer"]}
    with tempfile.TemporaryDirectory(prefix="racklet-bench-unitdl-") as name:
        tmp = Path(name)
        tls = make_tls(tmp / "tls")
        (tmp / "repo" / "targets").mkdir(parents=True)
        payload = os.urandom(args.mb << 20)
        (tmp / "repo" / "targets" / "payload").write_bytes(payload)
        info = TargetFile(len(payload), {"sha256": hashlib.sha256(payload).hexdigest()}, "payload")
        del payload
        server = _start_bulk(tmp / "repo", tls, 256 << 10)
        url = f"https://127.0.0.1:{server.port}/boot/v1/targets/"
        slots = [tmp / f"unit-{i}" for i in range(args.units)]
        for slot in slots:
            slot.mkdir()
        try:
            pool = ProcessPoolExecutor(len(slots), mp_context=get_context("spawn"))
            list(pool.map(abs, range(len(slots) * 4)))  # started before the clock runs

            def units(variant: str) -> Callable[[], None]:
                def work() -> None:
                    if variant == "procs":
                        jobs = [
                            pool.submit(_unit_download, url, tls, info, slot, "full", limits)
                            for slot in slots
                        ]
                        for job in jobs:
                            job.result()
                        return
                    threads = [
                        threading.Thread(
                            target=_unit_download, args=(url, tls, info, slot, variant, limits)
                        )
                        for slot in slots
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()

                return work

            def peer() -> None:
                curl = shlex.join(curl_args(tls, f"{url}payload", output="-", size=False))
                procs = [
                    subprocess.Popen(
                        ["bash", "-c", f"set -o pipefail; {curl} | sha256sum"],
                        stdout=subprocess.DEVNULL,
                    )
                    for _ in slots
                ]
                if any(p.wait() for p in procs):
                    raise RuntimeError("a curl failed")

            order = [*variants, "peer"]
            for index in range(args.rounds):
                turn = order[index % len(order) :] + order[: index % len(order)]
                for variant in turn:
                    work = peer if variant == "peer" else units(variant)
                    workers = list(pool._processes)
                    results[variant].append(_timed(work, server.proc.pid, workers))
            pool.shutdown()
        finally:
            server.stop()
    print(
        f"{args.units} downloads of {args.mb} MB at once, {args.rounds} rounds (median, min-max):"
    )
    for variant, runs in results.items():
        wall = [r[0] for r in runs]
        client = [r[1] for r in runs]
        served = [r[2] for r in runs]
        print(
            f"  {variant:8} {statistics.median(wall):5.2f} s ({min(wall):.2f}-{max(wall):.2f})"
            f"  client {statistics.median(client):5.2f} CPU s"
            f"  server {statistics.median(served):5.2f} CPU s"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
