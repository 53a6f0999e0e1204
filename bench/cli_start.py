"""The ``racklet`` command's start: CPU to reach its first line of work.

Every ``racklet`` command (the docs tests run about 300, the e2e tests many more, and a user
types them) pays for importing the CLI before it does anything. Measured as the CPU (user +
system) of ``python -m racklet.cli --help`` against the interpreter's own start
(``python -c pass``, the limit), alternating, median over ``--rounds``; with ``--compare DIR``
a second tree's ``src`` (e.g. a ``git archive`` of an older commit) is timed the same way.
``racklet get units`` is the commonest command of the pages: it runs up to the reading of
racklet.yaml (a missing one here, so it ends there with its one-line error), which counts
every import a command of that kind needs, and nothing of a rack.
Run: ``python -m bench cli_start``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def _cpu(command: Sequence[str], pythonpath: str | None) -> float:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    env["RACKLET_CONFIG"] = "/nonexistent/racklet.yaml"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode not in (0, 1) or b"Traceback" in done.stderr:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cli_start")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--compare", help="another tree whose src/ to time the same way")
    args = parser.parse_args(argv)
    here = str(Path(__file__).resolve().parents[1] / "src")
    racklet = [sys.executable, "-m", "racklet.cli"]
    sides: dict[str, tuple[list[str], str | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None)
    }
    for words in (["--help"], ["get", "units"]):
        name = f"racklet {' '.join(words)}"
        sides[name] = (racklet + words, here)
        if args.compare:
            sides[f"{name} (compare)"] = (racklet + words, str(Path(args.compare) / "src"))
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, (command, path) in sides.items():
            samples[name].append(_cpu(command, path))
    floor = statistics.median(samples["python -c pass"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"{name:28} median {median:.3f} CPU s (min {min(values):.3f}, max {max(values):.3f})"
            f", {median / floor:.1f}x the interpreter's start"
        )


if __name__ == "__main__":
    main()
