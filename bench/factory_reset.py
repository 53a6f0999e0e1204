"""Time of ``racklet reset --factory --yes`` for a running rack (issue #4).

Starts a rack with the real ``racklet up``, waits until every unit is Running, then times the
reset command (new CA, identities and TUF root, processes restarted) and, separately, the time
until every unit is Running again on the new trust.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench._rack import start_rack


def _running(config_path: Path) -> int:
    config: dict[str, Any] = yaml.safe_load(config_path.read_text())
    try:
        items = httpx.get(
            config["api"]["url"] + "/api/v1/computeunits",
            headers={"Authorization": f"Bearer {config['api']['token']}"},
            verify=config["api"]["caBundle"],
            timeout=2,
        ).json()["items"]
    except (httpx.HTTPError, ValueError, KeyError):
        return 0
    return sum(1 for i in items if (i.get("status") or {}).get("phase") == "Running")


def _wait_running(config_path: Path, units: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if config_path.exists() and _running(config_path) == units:
            return
        time.sleep(0.1)
    raise RuntimeError(f"not all {units} units Running within {timeout} s")


def run_once(units: int, speed: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="racklet-bench-") as tmp:
        state = Path(tmp) / "state"
        config_path = state / "racklet.yaml"
        up = start_rack(state, units, speed)
        try:
            _wait_running(config_path, units, 120)
            start = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "racklet.cli",
                    "--config",
                    str(config_path),
                    "reset",
                    "--factory",
                    "--yes",
                ],
                check=True,
                capture_output=True,
                timeout=300,
            )
            reset = time.monotonic() - start
            _wait_running(config_path, units, 120)
            return reset, time.monotonic() - start
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench factory_reset")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"factory_reset: {args.units} units, speed {args.speed:g}")
    print(f"{'run':>3} {'reset cmd (s)':>14} {'to all Running (s)':>19}")
    for run in range(1, args.repeat + 1):
        reset, total = run_once(args.units, args.speed)
        print(f"{run:>3} {reset:>14.2f} {total:>19.2f}", flush=True)


if __name__ == "__main__":
    main()
