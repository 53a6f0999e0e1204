"""Scrape cost: CPU of a running rack's processes with a real Prometheus scraping every 5 s.

Starts ``racklet up`` (``--units``, ``--speed 10``), waits until every unit runs, then reads
the CPU time (user + system, ``/proc/PID/stat``) of ``racklet up`` and every process under
it over a ``--seconds`` window twice: first with nothing scraping, then with Debian's
``prometheus`` scraping every target (``racklet prometheus config --interval 5s``: the
controller, each BMC, each OS agent, the RMC). The difference is the cost of being scraped,
as a share of one core. Prometheus's own CPU is not counted (it is not the rack's).
Run: ``python -m bench scrape_cost``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench._rack import start_rack

TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_seconds(root: int) -> float:
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _window(root: int, seconds: float) -> float:
    """Share of one core the rack used over ``seconds`` of wall time."""
    cpu, wall = _cpu_seconds(root), time.monotonic()
    time.sleep(seconds)
    return (_cpu_seconds(root) - cpu) / (time.monotonic() - wall)


def _cli(config: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "racklet.cli", "--config", str(config), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def _wait_running(config: Path, units: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            items = json.loads(_cli(config, "get", "units", "-o", "json"))["items"]
            if len(items) == units and all(
                (i.get("status") or {}).get("phase") == "Running" for i in items
            ):
                return
        except (subprocess.SubprocessError, ValueError):
            pass
        time.sleep(1.0)
    raise SystemExit("the rack's units did not all reach Running")


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scrape_cost")
    parser.add_argument("--units", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(list(argv))
    if shutil.which("prometheus") is None:
        raise SystemExit("needs Debian's prometheus (scripts/apt-packages.txt)")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "rack"
        rack = start_rack(state, args.units, 10.0)
        prometheus: subprocess.Popen[bytes] | None = None
        try:
            config = state / "racklet.yaml"
            deadline = time.monotonic() + 120
            while not config.exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            _wait_running(config, args.units)
            time.sleep(5.0)
            idle = _window(rack.pid, args.seconds)
            _cli(config, "prometheus", "config", "--interval", "5s")
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            prometheus = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={state / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={Path(tmp) / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(10.0)  # first scrapes, TLS sessions set up
            scraped = _window(rack.pid, args.seconds)
        finally:
            if prometheus is not None:
                prometheus.terminate()
                prometheus.wait(timeout=30)
            rack.send_signal(signal.SIGTERM)
            try:
                rack.wait(timeout=60)
            except subprocess.TimeoutExpired:
                rack.kill()
                rack.wait()
    targets = 1 + 2 * args.units + 1
    print(
        f"scrape cost: racklet up --units {args.units} --speed 10, {targets} targets, "
        f"{args.seconds:.0f} s windows"
    )
    print(f"  rack CPU, nothing scraping : {100 * idle:6.2f} % of a core")
    print(f"  rack CPU, scraped every 5 s: {100 * scraped:6.2f} % of a core")
    print(
        f"  cost of being scraped      : {100 * (scraped - idle):+6.2f} % of a core (goal <= +3 %)"
    )
