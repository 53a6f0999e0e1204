"""The switch relay's cost: Redfish GET and bulk-target downloads through it vs direct.

One rack, one run: ``prepare`` a state dir (as ``racklet up`` does), set every switch port and
the uplink to 1 Tbit/s so the model never limits (the relay's own CPU cost is what is
measured, schedule arithmetic included), start the controller and the twin processes, wait for
``unit-1`` Running, then alternate:

- Redfish ``GET /redfish/v1/Systems/unit-1`` with a session token, loaded by ``wrk``
  (``bench/redfish_get.lua``), at the BMC's switch-side URL (``bmc.url``: uplink, then the
  BMC's port) and at the BMC's own listener (``bmcPort``);
- the boot payload (a TUF target) from the bulk-target server with ``curl`` over mutual TLS
  (the controller's client identity), several at once, through unit-1's switch port
  (``switchPorts.bulk``: its port, then the uplink) and straight to ``bulkPort``.

Every process is stopped at the end. Prints each side's figure and the ratio relay/direct.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.boot_tools import cpu_seconds
from bench.redfish_get import Target, _wrk
from racklet.cli._prepare import prepare
from racklet.config import SwitchConfig, save


def _spawn(module: str, state: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", module, "--state-dir", str(state)], stdout=out, stderr=out
    )


def _running(api: httpx.Client, unit: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = api.get(f"/api/v1/computeunits/{unit}").json().get("status") or {}
            if status.get("phase") == "Running":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{unit} did not reach Running in {timeout} s")


def _download(url: str, state: Path, count: int) -> float:
    """MB/s of ``count`` parallel curls of ``url`` (mutual TLS, rack CA)."""
    ctl = state / "controller"
    argv = ["curl", "-sS", "-o", "/dev/null", "--cacert", str(state / "pki" / "ca.crt")]
    argv += ["--cert", str(ctl / "client.crt"), "--key", str(ctl / "client.key")]
    argv += ["-w", "%{size_download}\n", url]
    started = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(count)]
    total = sum(int(p.communicate()[0] or 0) for p in procs)
    return total / (time.monotonic() - started) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench switch_relay")
    parser.add_argument("--duration", type=float, default=5.0, help="wrk seconds per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--payload-mb", type=int, default=64)
    parser.add_argument("--curls", type=int, default=4)
    args, _ = parser.parse_known_args(argv)
    if shutil.which("wrk") is None or shutil.which("curl") is None:
        raise SystemExit("switch_relay: needs wrk and curl (Debian packages wrk, curl)")
    with tempfile.TemporaryDirectory(prefix="bench-switch-") as tmp:
        state = Path(tmp) / "rack"
        config = prepare(
            state,
            units=1,
            speed=10.0,
            profile="raspberry-pi-4",
            psu_rated_watts=100.0,
            payload_bytes=args.payload_mb << 20,
        )
        config = config.model_copy(
            update={"switch": SwitchConfig(portBandwidthBps=1e12, uplinkBandwidthBps=1e12)}
        )
        save(config)
        procs = [
            _spawn("racklet.controller", state, state / "logs" / "controller.log"),
            _spawn("racklet.hardware_side", state, state / "logs" / "twin.log"),
        ]
        try:
            ca = str(config.layout.ca_cert)
            headers = {"Authorization": f"Bearer {config.api.token}"}
            with httpx.Client(base_url=config.api.url, verify=ca, headers=headers) as api:
                _running(api, "unit-1", 180.0)
            unit = config.unit("unit-1")
            session = httpx.post(
                f"{unit.bmc.url}/redfish/v1/SessionService/Sessions",
                json={"UserName": unit.bmc.username, "Password": unit.bmc.password},
                verify=ca,
            )
            token = session.headers["X-Auth-Token"]
            path = "/redfish/v1/Systems/unit-1"
            redfish = {
                "relay": Target("relay", f"{unit.bmc.url}{path}", token),
                "direct": Target("direct", f"https://127.0.0.1:{unit.bmc_port}{path}", token),
            }
            targets = state / "boot" / "repo" / "targets"
            payload = max(targets.rglob("*.payload.bin"), key=lambda p: p.stat().st_size)
            rel = payload.relative_to(targets).as_posix()
            bulk = {
                "relay": f"https://127.0.0.1:{unit.switch_ports['bulk']}/boot/v1/targets/{rel}",
                "direct": f"https://127.0.0.1:{config.controller.bulk_port}/boot/v1/targets/{rel}",
            }
            rps: dict[str, list[float]] = {"relay": [], "direct": []}
            mbs: dict[str, list[float]] = {"relay": [], "direct": []}
            # CPU of the rack's processes (twin: BMC and relay; controller: bulk server) per
            # request and per MB: steadier than throughput on a machine others share.
            cpu_req: dict[str, list[float]] = {"relay": [], "direct": []}
            cpu_mb: dict[str, list[float]] = {"relay": [], "direct": []}
            pids = [proc.pid for proc in procs]
            for index in range(args.rounds):
                order = ("relay", "direct") if index % 2 == 0 else ("direct", "relay")
                for side in order:
                    before = cpu_seconds(pids)
                    result = _wrk(redfish[side], args.duration, args.connections, 1)
                    spent = cpu_seconds(pids) - before
                    rps[side].append(result.requests_per_s)
                    cpu_req[side].append(spent / (result.requests_per_s * args.duration) * 1e6)
                    before = cpu_seconds(pids)
                    mbs[side].append(_download(bulk[side], state, args.curls))
                    megabytes = args.curls * payload.stat().st_size / 1e6
                    cpu_mb[side].append((cpu_seconds(pids) - before) / megabytes * 1e3)
            print(
                f"switch_relay: {args.rounds} rounds; Redfish GET wrk -c{args.connections} "
                f"{args.duration:g}s; {args.curls} curls of {payload.stat().st_size >> 20} MB"
            )
            cpu = {side: min(cpu_req[side]) for side in cpu_req}
            per_mb = {side: min(cpu_mb[side]) for side in cpu_mb}
            for side in ("relay", "direct"):
                print(
                    f"  {side:6}  Redfish GET {max(rps[side]):8.0f} req/s, "
                    f"{cpu[side]:5.0f} us CPU/req   bulk {max(mbs[side]):7.1f} MB/s, "
                    f"{per_mb[side]:5.2f} ms CPU/MB   (rounds: "
                    f"{', '.join(f'{r:.0f}' for r in rps[side])} req/s; "
                    f"{', '.join(f'{m:.1f}' for m in mbs[side])} MB/s)"
                )
            print(
                "  relay/direct throughput: Redfish "
                f"{max(rps['relay']) / max(rps['direct']):.2f}x, "
                f"bulk {max(mbs['relay']) / max(mbs['direct']):.2f}x; "
                f"by CPU cost (direct/relay): Redfish {cpu['direct'] / cpu['relay']:.2f}x, "
                f"bulk {per_mb['direct'] / per_mb['relay']:.2f}x"
            )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
