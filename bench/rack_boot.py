"""Rack boot (5 units, 64 MB payload) vs. 5 parallel ``curl | sha256sum`` of that payload.

Starts ``racklet up --payload-bytes 67108864 --speed S`` (S high, so the twin's simulated
boot ROM and OS delays are not what is measured), waits for 5/5 Running, powers every unit
off through the API and waits for ``Off``, then times power-on until every unit is
``Running`` again: each unit refreshed its TUF metadata over mutual TLS, re-hashed the 64 MB
payload in its committed slot against the BMC's record and booted. (With the A/B slots a
reboot downloads nothing unless a newer release is published; the first boot's download is
inside ``first_up_s``, which also holds provisioning.) The peer runs in the same invocation:
the payload file found in the rack's state dir is served by the same boot-server code
(``bench.boot_serve``, same TLS) and 5 ``curl ... | sha256sum`` pipelines download and hash
it at once. Rounds alternate the order.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.boot_tools import Tls, curl_args, free_port, make_tls

PAYLOAD_BYTES = 64 << 20


class _Rack:
    def __init__(self, state: Path, units: int, speed: float) -> None:
        self.units = units
        self.proc = subprocess.Popen(
            [
                *[sys.executable, "-m", "racklet.cli", "up", "--state-dir", str(state)],
                *["--units", str(units), "--speed", str(speed)],
                *["--payload-bytes", str(PAYLOAD_BYTES)],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.state = state
        self.client: httpx.Client | None = None

    def _api(self, timeout: float) -> httpx.Client:
        deadline = time.monotonic() + timeout
        while self.client is None:
            try:
                config = yaml.safe_load((self.state / "racklet.yaml").read_text())
                self.client = httpx.Client(
                    base_url=config["api"]["url"],
                    verify=config["api"]["caBundle"],
                    headers={"Authorization": f"Bearer {config['api']['token']}"},
                )
            except (OSError, yaml.YAMLError, KeyError, TypeError):
                if time.monotonic() > deadline:
                    raise RuntimeError("racklet up wrote no usable racklet.yaml") from None
                time.sleep(0.1)
        return self.client

    def phases(self) -> list[str]:
        try:
            items: list[dict[str, Any]] = self._api(60).get("/api/v1/computeunits").json()["items"]
        except (httpx.HTTPError, ValueError, KeyError):
            return []
        return [str((i.get("status") or {}).get("phase")) for i in items]

    def wait_all(self, phase: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            phases = self.phases()
            if len(phases) == self.units and all(p == phase for p in phases):
                return
            if "BootFailed" in phases:
                raise RuntimeError(f"a unit failed to boot: {phases}")
            time.sleep(0.02)
        raise RuntimeError(f"not all units {phase} within {timeout} s: {self.phases()}")

    def power(self, value: str) -> None:
        api = self._api(60)
        for item in api.get("/api/v1/computeunits").json()["items"]:
            name = item["metadata"]["name"]
            api.patch(f"/api/v1/computeunits/{name}", json={"spec": {"power": value}})

    def timed_boot(self, timeout: float) -> float:
        self.power("Off")
        self.wait_all("Off", timeout)
        start = time.monotonic()
        self.power("On")
        self.wait_all("Running", timeout)
        return time.monotonic() - start

    def payload_file(self) -> Path:
        files = [p for p in self.state.rglob("*") if p.is_file() and not p.is_symlink()]
        big = [p for p in files if p.stat().st_size == PAYLOAD_BYTES]
        if not big:
            raise RuntimeError("no 64 MB payload file in the rack's state dir")
        return big[0]

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def _peer(tls: Tls, port: int, units: int) -> float:
    """5 concurrent ``curl | sha256sum`` pipelines; seconds until the last hash is printed."""
    url = f"https://127.0.0.1:{port}/boot/v1/targets/payload"
    curl = shlex.join(curl_args(tls, url, output="-", size=False))
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            ["bash", "-c", f"set -o pipefail; {curl} | sha256sum"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(units)
    ]
    hashes = {p.communicate(timeout=300)[0].split()[0] for p in procs}
    elapsed = time.monotonic() - start
    if any(p.returncode for p in procs) or len(hashes) != 1:
        raise RuntimeError("a peer download failed")
    return elapsed


def run(units: int, speed: float, rounds: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="racklet-bench-rackboot-") as name:
        tmp = Path(name)
        rack = _Rack(tmp / "state", units, speed)
        serve: subprocess.Popen[bytes] | None = None
        try:
            start = time.monotonic()
            rack.wait_all("Running", timeout)
            first_up = time.monotonic() - start
            repo = tmp / "peer-repo"
            (repo / "targets").mkdir(parents=True)
            (repo / "targets" / "payload").write_bytes(rack.payload_file().read_bytes())
            tls = make_tls(tmp / "peer-tls")
            port = free_port()
            serve = subprocess.Popen(
                [
                    *[sys.executable, "-m", "bench.boot_serve", str(repo), str(port)],
                    *[str(tls.server_cert), str(tls.server_key), str(tls.ca)],
                ],
                stdout=subprocess.PIPE,
            )
            assert serve.stdout is not None
            if serve.stdout.readline().strip() != b"ready":
                raise RuntimeError("peer boot server did not start")
            boots: list[float] = []
            peers: list[float] = []
            for index in range(rounds):
                if index % 2 == 0:
                    boots.append(rack.timed_boot(timeout))
                    peers.append(_peer(tls, port, units))
                else:
                    peers.append(_peer(tls, port, units))
                    boots.append(rack.timed_boot(timeout))
        finally:
            if serve is not None:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=30)
            rack.stop()
    boot, peer = statistics.median(boots), statistics.median(peers)
    return {
        "units": units,
        "speed": speed,
        "first_up_s": first_up,
        "boot_s": boots,
        "peer_s": peers,
        "median_boot_s": boot,
        "median_peer_s": peer,
        "ratio": boot / peer,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench rack_boot")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--speed", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    result = run(args.units, args.speed, args.rounds, args.timeout)
    boots = ", ".join(f"{x:.2f}" for x in result["boot_s"])
    peers = ", ".join(f"{x:.2f}" for x in result["peer_s"])
    print(f"first racklet up to {args.units}/{args.units} Running: {result['first_up_s']:.2f} s")
    print(
        f"power-on to {args.units}/{args.units} Running: {result['median_boot_s']:.2f} s "
        f"(runs {boots})"
    )
    print(f"{args.units} x curl | sha256sum:       {result['median_peer_s']:.2f} s (runs {peers})")
    print(f"rack boot / downloads+hash: {result['ratio']:.2f}x (goal <= 1.5)")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
