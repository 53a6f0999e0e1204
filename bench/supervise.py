"""How fast ``racklet up`` recovers from a dead controller, and how fast its children end
when ``up`` itself is killed.

For each run: a fresh rack is started and brought to N/N Running; the controller is killed
with SIGKILL and the time from the kill until its API answers again with N/N Running (the
twin ran on meanwhile) is measured; then ``up`` is killed with SIGKILL and the time until
both of its children are gone (the kernel's parent-death signal) is measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from bench._rack import start_rack


def _children(pid: int) -> dict[str, int]:
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        found[argv[argv.index(b"-m") + 1].decode()] = int(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _running(state: Path, units: int) -> bool:
    try:
        config = yaml.safe_load((state / "racklet.yaml").read_text())
        items = httpx.get(
            f"{config['api']['url']}/api/v1/computeunits",
            verify=config["api"]["caBundle"],
            headers={"Authorization": f"Bearer {config['api']['token']}"},
            timeout=2.0,
        ).json()["items"]
    except (OSError, yaml.YAMLError, httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    running: int = sum((i.get("status") or {}).get("phase") == "Running" for i in items)
    return running == units


def _until(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def run_once(units: int, timeout: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="racklet-bench-supervise-") as tmp:
        state = Path(tmp) / "state"
        up = start_rack(state, units, 10.0)
        try:
            _until(lambda: _running(state, units), timeout)
            children = _children(up.pid)
            killed = time.monotonic()
            os.kill(children["racklet.controller"], signal.SIGKILL)
            _until(lambda: not _running(state, units), timeout)  # the API is gone...
            _until(lambda: _running(state, units), timeout)  # ...and back
            recover = time.monotonic() - killed
            survivors = _children(up.pid).values()
            up.kill()
            up.wait()
            gone = _until(lambda: not any(_alive(p) for p in survivors), timeout)
            return recover, gone
        finally:
            if up.poll() is None:
                up.send_signal(signal.SIGTERM)
                up.wait(timeout=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench supervise")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    print(f"supervise: {args.units} units, speed 10, {args.repeat} runs, cpus={os.cpu_count()}")
    print(f"{'run':>3} {'controller back, N/N Running (s)':>33} {'children gone (s)':>18}")
    for run in range(1, args.repeat + 1):
        recover, gone = run_once(args.units, args.timeout)
        print(f"{run:>3} {recover:>33.2f} {gone:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
