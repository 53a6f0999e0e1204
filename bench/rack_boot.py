"""Rack boot that downloads (5 units, 64 MB payload) vs. 5 parallel ``curl | sha256sum``.

Starts ``racklet up --payload-bytes 67108864 --speed S`` and waits for 5/5 Running. Each round
then does what an operator does to update the rack at once: builds a new 64 MB OS payload (a
new version, so new bytes), publishes it with ``racklet release publish --current`` (the real
CLI: TUF-signed, the channel pointed at it), powers every unit off through the API (as
``racklet power off --all`` does, one PATCH per unit), waits for ``Off`` (phase and power
state: the OS halted and the BMC switched it off), and times power-on
until the API shows every unit ``Running`` *on the new version*. In that time each unit
refreshed its TUF metadata over mutual TLS, streamed the 64 MB payload into its inactive A/B
slot while hashing it, checked it against the signed target info, set the try-boot flag,
warm-rebooted into the trial slot and booted the OS, which heartbeats to the controller and
commits the slot. Publishing is not timed (the peer signs nothing either). Phases are
followed with the API's watch (no polling load on the controller, no polling interval).

``--speed`` 50 by default: the twin's simulated boot ROM and OS boot (2 s each) take 40 ms of
wall time; at 100 the trial's health deadline (120 simulated seconds) is only 1.2 s of wall
time, which a loaded 2-core machine sometimes misses (the unit then rightly falls back and
the round fails with that message).

The peer runs in the same invocation on the same round's payload: served by the same
boot-server code and TLS (``bench.boot_serve``), fetched by 5 ``curl ... | sha256sum``
pipelines at once. Rounds alternate the order. Besides wall time, the CPU seconds of each
side are reported (rack: twin + controller processes; peer: server + pipelines).

The switch's links are set as fast as loopback allows (``--uplink-mbps``/``--port-mbps``, 100
Gbit/s): the relay still carries every byte and its CPU counts, but the model does not set the
pace (at ``racklet up``'s 1 GbE a unit's 64 MB need 0.57 s on its port alone, against curl's
unshaped loopback); ``bench switch_boot`` and ``p2p_boot`` are the runs through the model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench._rack import rack_api, start_rack
from bench.boot_tools import Tls, curl_args, free_port, make_tls
from racklet.boot import build_default_payload

PAYLOAD_BYTES = 64 << 20
PACKAGE = "racklet-os"


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(marker: str) -> float:
    """utime + stime of every live process whose command line contains ``marker``."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "cmdline").read_text():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


_ROLES = {"twin": "racklet.hardware_side", "controller": "racklet.controller"}


def _stat(pid: str) -> list[str] | None:
    try:
        return (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _tree_cpu(root: str) -> float:
    """utime + stime of ``root`` and every live process below it, plus what their reaped
    children used (cutime + cstime): the units' download processes, forked by a fork server
    below the twin, are the twin's CPU although their command lines name no state dir."""
    parents: dict[str, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
            parents[entry.name] = fields[1]
    total = 0.0
    for pid in parents:
        up = pid
        while up != root and up in parents and up != "1":
            up = parents[up]
        if up == root and (fields := _stat(pid)) is not None:
            total += sum(int(f) for f in fields[11:15]) / _TICK
    return total


def _pids(marker: str) -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_text():
                out.append(entry.name)
        except OSError:
            continue
    return out


def _rack_cpu(state: Path) -> dict[str, float]:
    """CPU seconds of the rack's processes by role: twin (the hardware side and the processes
    it forked), controller, and the rest (the ``racklet up`` supervisor)."""
    out = {
        role: sum(_tree_cpu(pid) for pid in _pids(f"{module}\0--state-dir\0{state}"))
        for role, module in _ROLES.items()
    }
    supervisor = [pid for pid in _pids(f"up\0--state-dir\0{state}")]
    out["other"] = sum(
        sum(int(f) for f in fields[11:13]) / _TICK
        for pid in supervisor
        if (fields := _stat(pid)) is not None
    )
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class TrialFellBack(RuntimeError):
    """A unit's BMC rejected the new version's trial: the round has no time to report (the
    benchmarks count it and go on with the next round, which updates that unit again)."""


class _Watch:
    """Follows ``GET /api/v1/computeunits?watch=true`` in a thread: every unit's (phase,
    osVersion) as the controller records it, without polling the API (which would load the
    controller under test) and without a polling interval in the measurement."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._units: dict[str, tuple[str, str, str]] = {}
        """Each unit's (phase, osVersion, powerState) as the controller last recorded them."""
        self.running_at: dict[tuple[str, str], float] = {}
        """When (wall clock) the watch first showed each (unit, version) Running."""
        self._changed = threading.Condition()
        self._error: str | None = None
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._follow, name="watch", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            request = self._client.build_request(
                "GET", "/api/v1/computeunits", params={"watch": "true"}, timeout=None
            )
            self._response = self._client.send(request, stream=True)
            for line in self._response.iter_lines():
                event = json.loads(line)
                if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                obj = event["object"]
                status = obj.get("status") or {}
                with self._changed:
                    name = obj["metadata"]["name"]
                    if event["type"] == "DELETED":
                        self._units.pop(name, None)
                    else:
                        phase, version = str(status.get("phase")), str(status.get("osVersion"))
                        self._units[name] = (phase, version, str(status.get("powerState")))
                        if phase == "Running":
                            self.running_at.setdefault((name, version), time.time())
                    self._changed.notify_all()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            with self._changed:
                self._error = f"the watch ended: {exc}"
                self._changed.notify_all()

    def wait(self, done: Callable[[list[tuple[str, str, str]]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(list(self._units.values())):
                if self._error is not None:
                    raise RuntimeError(self._error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"timed out after {timeout} s: {self._units}")
                self._changed.wait(min(left, 0.5))

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._thread.join(timeout=10)


class _Rack:
    def __init__(self, state: Path, units: int, speed: float, extra: tuple[str, ...] = ()) -> None:
        self.units = units
        self.proc = start_rack(state, units, speed, ["--payload-bytes", str(PAYLOAD_BYTES), *extra])
        self.state = state
        self.client: httpx.Client | None = None
        self.watch: _Watch | None = None

    def _api(self, timeout: float) -> httpx.Client:
        if self.client is None:
            self.client = rack_api(self.state, timeout)
        return self.client

    def statuses(self) -> list[tuple[str, str]]:
        """(phase, osVersion) of every unit."""
        try:
            items: list[dict[str, Any]] = self._api(60).get("/api/v1/computeunits").json()["items"]
        except (httpx.HTTPError, ValueError, KeyError):
            return []
        out = []
        for item in items:
            status = item.get("status") or {}
            out.append((str(status.get("phase")), str(status.get("osVersion"))))
        return out

    def wait_all(self, phase: str, timeout: float, version: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        seen: list[tuple[str, str]] = []
        while time.monotonic() < deadline:
            seen = self.statuses()
            if len(seen) == self.units and all(
                p == phase and (version is None or v == version) for p, v in seen
            ):
                return
            if any(p == "BootFailed" for p, _ in seen):
                raise RuntimeError(f"a unit failed to boot: {seen}")
            if version is not None:
                self._check_trials(version)
            time.sleep(0.02)
        raise RuntimeError(f"not all units {phase} {version or ''} within {timeout} s: {seen}")

    def _check_trials(self, version: str) -> None:
        """Fail fast when a unit's BMC rejected the new version's trial (it fell back)."""
        for record in (self.state / "bmc").glob("*/ab.json"):
            try:
                rejected = json.loads(record.read_text()).get("rejectedVersion")
            except (OSError, ValueError):
                continue
            if rejected == version:
                raise TrialFellBack(
                    f"{record.parent.name}: the trial of {version} failed and the unit fell "
                    "back (see its console); at a high --speed the 120 simulated seconds of "
                    "the health deadline are little wall time"
                )

    def power(self, value: str) -> None:
        api = self._api(60)
        for item in api.get("/api/v1/computeunits").json()["items"]:
            name = item["metadata"]["name"]
            api.patch(f"/api/v1/computeunits/{name}", json={"spec": {"power": value}})

    def publish(self, version: str, payload: Path) -> None:
        """``racklet release publish --current``, exactly as an operator types it."""
        done = subprocess.run(
            [
                *[
                    sys.executable,
                    "-m",
                    "racklet.cli",
                    "--config",
                    str(self.state / "racklet.yaml"),
                ],
                *["release", "publish", "--name", PACKAGE, "--version", version, "--current"],
                str(payload),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"release publish failed: {done.stderr.strip()}")

    def timed_update(self, version: str, timeout: float) -> tuple[float, float]:
        """Power-cycle the rack; seconds from power-on to every unit Running ``version``, and
        the CPU seconds the rack's processes (twin, controller) spent meanwhile."""
        seconds, cpu, _ = self.timed_update_by_role(version, timeout)
        return seconds, sum(cpu.values())

    def timed_update_by_role(
        self, version: str, timeout: float
    ) -> tuple[float, dict[str, float], float]:
        """:meth:`timed_update` with the CPU seconds by role, and the wall-clock time of
        power-on (for the units' boot timelines)."""
        if self.watch is None:
            self.watch = _Watch(self._api(60))
        n = self.units

        def off(seen: list[tuple[str, str, str]]) -> bool:
            # powerState too: phase Off comes as soon as the BMC starts a graceful shutdown
            # (reason PoweringOff); the OS's halt after it is not part of the update boot
            return len(seen) == n and all(p == "Off" and s == "Off" for p, _, s in seen)

        def updated(seen: list[tuple[str, str, str]]) -> bool:
            if any(p == "BootFailed" for p, _, _ in seen):
                raise RuntimeError(f"a unit failed to boot: {seen}")
            self._check_trials(version)
            return len(seen) == n and all(p == "Running" and v == version for p, v, _ in seen)

        self.power("Off")
        self.watch.wait(off, timeout)
        cpu = _rack_cpu(self.state)
        start, started_at = time.monotonic(), time.time()
        self.power("On")
        self.watch.wait(updated, timeout)
        seconds = time.monotonic() - start
        after = _rack_cpu(self.state)
        return seconds, {role: after[role] - cpu[role] for role in after}, started_at

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.close()
        if self.client is not None:
            self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def _peer(tls: Tls, port: int, units: int, server: str) -> tuple[float, float]:
    """5 concurrent ``curl | sha256sum`` pipelines; seconds until the last hash is printed,
    and the CPU seconds of the pipelines and of the server (``server``: its command line)."""
    url = f"https://127.0.0.1:{port}/boot/v1/targets/payload"
    curl = shlex.join(curl_args(tls, url, output="-", size=False))
    cpu = _children_cpu() + _cpu_seconds(server)
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
    return elapsed, _children_cpu() + _cpu_seconds(server) - cpu


NOISE = 0.30
"""A round whose peer time is this far from the peer's median is flagged as noise."""


def noisy_rounds(peers: list[float], limit: float = NOISE) -> list[int]:
    """The rounds (from 1) whose peer time moved more than ``limit`` from the peer's median:
    the machine was busy then, so that round's ratio says more about the machine."""
    median = statistics.median(peers)
    return [i + 1 for i, p in enumerate(peers) if abs(p - median) > limit * median]


_TIMELINE = re.compile(r"unit=(\S+) .*msg=\"?(?:boot|os) timeline: ([^\"]*)")
STEPS = (
    ("power-on to bootstrap (controller, BMC, boot ROM)", "power-on", "start"),
    ("TUF metadata refresh", "start", "refreshed"),
    ("download + hash into the slot", "refreshed", "downloaded"),
    ("install (agent config, rename, record)", "downloaded", "installed"),
    ("arm try-boot, warm reboot", "installed", "start#2"),
    ("trial slot check, start OS", "start#2", "verified"),
    ("OS boot (simulated)", "verified", "up"),
    ("agent up, first heartbeat accepted", "up", "healthy"),
    ("commit through the BMC", "healthy", "committed"),
    ("commit to Running in the API", "committed", "running"),
)


def timelines(log: Path, since: float) -> dict[str, dict[str, float]]:
    """Each unit's boot steps after ``since`` (wall clock), from the bootstrap's and the OS's
    timeline lines in the twin's log; a repeated step gets ``#2``."""
    out: dict[str, dict[str, float]] = {}
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        match = _TIMELINE.search(line)
        if match is None:
            continue
        steps = out.setdefault(match.group(1), {})
        for pair in match.group(2).split():
            step, _, value = pair.partition("=")
            at = float(value)
            if at < since:
                continue
            name, n = step, 1
            while name in steps:
                n += 1
                name = f"{step}#{n}"
            steps[name] = at
    return out


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def _fmt(values: list[float], unit: str = "s", digits: int = 2) -> str:
    median, low, high = spread(values)
    return f"{median:.{digits}f} {unit} (min {low:.{digits}f}, max {high:.{digits}f})"


def run(
    units: int,
    speed: float,
    rounds: int,
    timeout: float,
    uplink_mbps: float,
    port_mbps: float = 100000.0,
) -> dict[str, Any]:
    step_times: dict[str, list[float]] = {label: [] for label, _, _ in STEPS}
    boots: list[float] = []
    peers: list[float] = []
    fell_back: list[str] = []
    boot_cpu: list[dict[str, float]] = []
    peer_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="racklet-bench-rackboot-") as name:
        tmp = Path(name)
        links = ("--uplink-mbps", f"{uplink_mbps:g}", "--port-mbps", f"{port_mbps:g}")
        rack = _Rack(tmp / "state", units, speed, links)
        serve: subprocess.Popen[bytes] | None = None
        try:
            start = time.monotonic()
            rack.wait_all("Running", timeout)
            first_up = time.monotonic() - start
            repo = tmp / "peer-repo"
            (repo / "targets").mkdir(parents=True)
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
            server = f"bench.boot_serve\0{repo}"

            def boot(version: str) -> None:
                try:
                    seconds, cpu, started_at = rack.timed_update_by_role(version, timeout)
                except TrialFellBack as exc:
                    print(f"  round of {version} not counted: {exc}", flush=True)
                    fell_back.append(version)
                    return
                boots.append(seconds)
                boot_cpu.append(cpu)
                assert rack.watch is not None
                found = timelines(tmp / "state" / "logs" / "twin.log", started_at)
                for unit, steps in found.items():
                    steps["power-on"] = started_at
                    running = rack.watch.running_at.get((unit, version))
                    if running is not None:
                        steps["running"] = running
                    for label, first, last in STEPS:
                        if first in steps and last in steps:
                            step_times[label].append(steps[last] - steps[first])

            def peer() -> None:
                seconds, cpu = _peer(tls, port, units, server)
                peers.append(seconds)
                peer_cpu.append(cpu)

            for index in range(rounds):
                version = f"1.0.{index + 1}"
                release = tmp / f"release-{version}"
                release.mkdir()
                payload = build_default_payload(PAYLOAD_BYTES, version)
                (release / "payload.bin").write_bytes(payload)
                (repo / "targets" / "payload").write_bytes(payload)
                del payload
                rack.publish(version, release / "payload.bin")
                if index % 2 == 0:
                    boot(version)
                    peer()
                else:
                    peer()
                    boot(version)
                if version in fell_back:
                    peers.pop()  # a round counts only with both sides
                    peer_cpu.pop()
                    continue
                print(
                    f"  round {index + 1}: rack {boots[-1]:.2f} s, "
                    f"{sum(boot_cpu[-1].values()):.2f} CPU s; peer {peers[-1]:.2f} s, "
                    f"{peer_cpu[-1]:.2f} CPU s",
                    flush=True,
                )
        finally:
            if serve is not None:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=30)
            rack.stop()
    if not boots:
        raise RuntimeError("no round counted: in every one a unit's trial fell back")
    rack_cpu = [sum(c.values()) for c in boot_cpu]
    median_peer = statistics.median(peers)
    return {
        "units": units,
        "speed": speed,
        "uplink_mbps": uplink_mbps,
        "port_mbps": port_mbps,
        "payload_bytes": PAYLOAD_BYTES,
        "first_up_s": first_up,
        "boot_s": boots,
        "peer_s": peers,
        "ratios": [b / p for b, p in zip(boots, peers, strict=True)],
        "median_boot_s": statistics.median(boots),
        "median_peer_s": median_peer,
        "ratio": statistics.median(boots) / median_peer,
        "boot_cpu_s": rack_cpu,
        "boot_cpu_by_role_s": boot_cpu,
        "peer_cpu_s": peer_cpu,
        "cpu_ratios": [b / p for b, p in zip(rack_cpu, peer_cpu, strict=True)],
        "cpu_ratio": statistics.median(rack_cpu) / statistics.median(peer_cpu),
        "fell_back": fell_back,
        "noisy_rounds": noisy_rounds(peers),
        "steps_s": step_times,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench rack_boot")
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--uplink-mbps",
        type=float,
        default=100000.0,
        help="the switch's modelled uplink; the default is fast enough that the software, "
        "not the model, is measured (the relay still carries every byte)",
    )
    parser.add_argument(
        "--port-mbps",
        type=float,
        default=100000.0,
        help="each unit's modelled switch port, as fast by default (at racklet up's 1000, a "
        "unit's 64 MB need 0.57 s on its port alone: the model, not the software)",
    )
    args, _ = parser.parse_known_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1 (5 or more for a spread worth reporting)")
    result = run(
        args.units, args.speed, args.rounds, args.timeout, args.uplink_mbps, args.port_mbps
    )
    n = args.units
    print(f"first racklet up to {n}/{n} Running: {result['first_up_s']:.2f} s")
    print(f"rounds: {args.rounds}, order alternating (odd rounds: rack first)")
    print(
        f"update boot (power-on to {n}/{n} Running the new 64 MB release): {_fmt(result['boot_s'])}"
    )
    print(f"{n} x curl | sha256sum: {_fmt(result['peer_s'])}")
    print(
        f"ratio of medians: {result['ratio']:.2f}x; per round: "
        f"{_fmt(result['ratios'], 'x')} (goal: median <= 1.3)"
    )
    roles = result["boot_cpu_by_role_s"]
    by_role = {role: [r[role] for r in roles] for role in roles[0]}
    print(
        f"CPU seconds, rack: {_fmt(result['boot_cpu_s'], 'CPU s')}; "
        + ", ".join(f"{role} {statistics.median(v):.2f}" for role, v in by_role.items())
    )
    print(f"CPU seconds, peer (server + curl + sha256sum): {_fmt(result['peer_cpu_s'], 'CPU s')}")
    print(
        f"CPU ratio of medians: {result['cpu_ratio']:.2f}x; per round: "
        f"{_fmt(result['cpu_ratios'], 'x')} (goal: <= 1.1)"
    )
    if result["fell_back"]:
        print(f"rounds not counted (a unit's trial fell back): {', '.join(result['fell_back'])}")
    if result["noisy_rounds"]:
        print(
            f"NOISE: the peer's time moved > {NOISE:.0%} from its median in round(s) "
            f"{', '.join(map(str, result['noisy_rounds']))}: the machine was busy"
        )
    print("where a unit's update boot goes (per unit and round: median, max):")
    for label, values in result["steps_s"].items():
        if values:
            print(f"  {label:<52} {statistics.median(values):6.3f} s  {max(values):6.3f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
