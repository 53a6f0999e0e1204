"""Time from ``racklet up`` to N/N units Running, and peak memory of each process.

Starts the real ``racklet up`` in a fresh state dir for each speed, polls the API (as the CLI
does) until every unit is Running, then reads each process's peak resident set (VmHWM) from
/proc before stopping the rack. The first start of a state dir includes building the CA and
the boot payload, as a student's first ``racklet up`` does; that is what is timed.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench._rack import start_rack


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def run_once(units: int, speed: float, timeout: float) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory(prefix="racklet-bench-") as tmp:
        state = Path(tmp) / "state"
        start = time.monotonic()
        up = start_rack(state, units, speed)
        try:
            config_path = state / "racklet.yaml"
            client = None
            while time.monotonic() - start < timeout:
                if client is None and config_path.exists():
                    try:
                        config = yaml.safe_load(config_path.read_text())
                        client = httpx.Client(
                            base_url=config["api"]["url"],
                            verify=config["api"]["caBundle"],
                            headers={"Authorization": f"Bearer {config['api']['token']}"},
                        )
                    except (OSError, yaml.YAMLError, KeyError, TypeError):
                        client = None
                if client is not None:
                    try:
                        items = client.get("/api/v1/computeunits").json()["items"]
                        running = sum(
                            1 for i in items if (i.get("status") or {}).get("phase") == "Running"
                        )
                        if running == units:
                            break
                    except (httpx.HTTPError, ValueError, KeyError):
                        pass
                time.sleep(0.1)
            else:
                raise RuntimeError(f"not all {units} units Running within {timeout} s")
            elapsed = time.monotonic() - start
            result: dict[str, float | str] = {"seconds": elapsed, "up_MiB": _peak_mib(up.pid)}
            for child in _children(up.pid):
                role = "twin" if "racklet.hardware_side" in _cmdline(child) else "controller"
                result[f"{role}_MiB"] = _peak_mib(child)
            return result
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench rack_up")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--speeds", default="1,10")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    print(f"rack_up: {args.units} units, {args.repeat} runs per speed, cpus={os.cpu_count()}")
    print(
        f"{'speed':>6} {'run':>3} {'to Running (s)':>15} {'up MiB':>7} "
        f"{'twin MiB':>9} {'ctrl MiB':>9}"
    )
    for speed in (float(s) for s in args.speeds.split(",")):
        times = []
        for run in range(1, args.repeat + 1):
            r = run_once(args.units, speed, args.timeout)
            times.append(float(r["seconds"]))
            print(
                f"{speed:>6g} {run:>3} {float(r['seconds']):>15.2f} {float(r['up_MiB']):>7.1f} "
                f"{float(r.get('twin_MiB', float('nan'))):>9.1f} "
                f"{float(r.get('controller_MiB', float('nan'))):>9.1f}",
                flush=True,
            )
        times.sort()
        print(f"{speed:>6g} median {times[len(times) // 2]:.2f} s", flush=True)


if __name__ == "__main__":
    main()
