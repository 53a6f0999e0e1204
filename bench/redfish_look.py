"""The controller's look, from the client's side: CPU per look in the client's process.

A unit reconcile's look is two GETs through :class:`racklet.redfish.RedfishClient`: the
System and the chassis' EnvironmentMetrics. This runs the real client as the controller
builds it (mutual TLS with a controller certificate as the login, the BMC's identity pinned,
the CRL followed) against a real BMC in its own process (``bench._bmc_target``, the twin's
CRL-following listener), and counts the client process's CPU (``time.process_time``) per
look, so the BMC's work is not in the figure and other processes' load barely moves it.
With ``--compare DIR`` the client runs from another tree's ``src/`` too (a ``git archive``
of a base commit on ``PYTHONPATH``), against the same BMC, alternating round by round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.redfish_get import _free_port, _prepare, _process, _wait_up

_HERE = Path(__file__).resolve().parent


async def _looks(base: str, work: Path, looks: int, warm: int) -> float:
    """Microseconds of this process's CPU per look, after ``warm`` unmeasured looks."""
    from racklet.net import spiffe_id
    from racklet.redfish import RedfishClient

    pki = work / "pki"
    client = RedfishClient(
        base,
        "controller",
        None,
        ca_bundle=pki / "ca.crt",
        client_cert=(work / "controller.crt", work / "controller.key"),
        expect=spiffe_id("bench", "bmc", "unit-1"),
        crl=pki / "crl.pem",
    )
    async with client:
        for _ in range(warm):
            await client.system("unit-1")
            await client.environment_metrics("unit-1")
        started = time.process_time()
        for _ in range(looks):
            await client.system("unit-1")
            await client.environment_metrics("unit-1")
        return (time.process_time() - started) / looks * 1e6


def _client_main(argv: list[str]) -> None:
    """The measuring side, in its own process (so a tree's ``src/`` can be put first)."""
    base, work, looks, warm = argv[0], Path(argv[1]), int(argv[2]), int(argv[3])
    import uvloop

    print(json.dumps(uvloop.run(_looks(base, work, looks, warm))))


def _one(base: str, work: Path, looks: int, warm: int, tree: str | None) -> float:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(tree) / "src"), str(_HERE.parent)])
    argv = [sys.executable, "-m", "bench.redfish_look", "--client", base, str(work)]
    done = subprocess.run(
        [*argv, str(looks), str(warm)],
        capture_output=True,
        text=True,
        env=env,
        cwd=_HERE.parent,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the client failed: {done.stderr.strip()[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--client"]:
        _client_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench redfish_look")
    parser.add_argument("--looks", type=int, default=2000, help="measured, per round")
    parser.add_argument("--warm", type=int, default=200, help="unmeasured looks first")
    parser.add_argument("--rounds", type=int, default=5, help="per side")
    parser.add_argument("--compare", help="another tree whose src/ to measure the same way")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.looks < 1:
        parser.error("--rounds and --looks must be at least 1")
    sides: dict[str, str | None] = {"this tree": None}
    if args.compare:
        sides[f"compare ({args.compare})"] = args.compare
    results: dict[str, list[float]] = {side: [] for side in sides}
    load = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="racklet-look-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        from racklet.pki import RackCA

        _prepare(work)
        ca = RackCA.load(work / "pki")
        ca.issue("racklet-controller", role="controller", client=True).write(work, "controller")
        port = _free_port()
        argv_bmc = [sys.executable, "-m", "bench._bmc_target", "--dir", str(work / "bmc")]
        argv_bmc += ["--port", str(port), "--crl", str(work / "pki" / "crl.pem")]
        proc = stack.enter_context(_process(argv_bmc, work / "bmc.log", cwd=_HERE.parent))
        base = f"https://127.0.0.1:{port}"
        _wait_up(base + "/redfish/v1", work / "pki" / "ca.crt", proc, "the Racklet BMC")
        for n in range(args.rounds):
            order = list(sides.items()) if n % 2 == 0 else list(reversed(sides.items()))
            for side, tree in order:
                results[side].append(_one(base, work, args.looks, args.warm, tree))
    print(
        f"a look (System + EnvironmentMetrics) over mutual TLS, {args.looks} per round, "
        f"{args.rounds} round(s) per side, load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    for side, costs in results.items():
        print(
            f"{side}: client CPU per look median {statistics.median(costs):.0f} µs "
            f"(min {min(costs):.0f}, max {max(costs):.0f})"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
