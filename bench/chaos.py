"""Longer chaos: the chaos test's state machine (tests/chaos) with more steps and sequences.

CI runs one derandomized sequence: every fault kind once, with hot-swaps, power changes and a
rollout. This runs ``--examples`` random sequences of ``--steps`` steps each (past the
schedule, the rack runs on with its invariants checked after every step), and reports the
wall time and the outcome. A failure prints hypothesis's reproduction blob and the step log.

    python -m bench chaos --examples 3 --steps 40
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench chaos")
    parser.add_argument("--examples", type=int, default=3, help="random sequences")
    parser.add_argument("--steps", type=int, default=40, help="steps per sequence")
    parser.add_argument("--shrink", action="store_true", help="shrink a failing sequence")
    args = parser.parse_args(argv)
    env = dict(
        os.environ,
        CHAOS_EXAMPLES=str(args.examples),
        CHAOS_STEPS=str(args.steps),
        CHAOS_RANDOM="1",
        CHAOS_VERBOSE="1",
        **({"CHAOS_SHRINK": "1"} if args.shrink else {}),
    )
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p",
         "no:logging", "--timeout", "0", "tests/chaos"],  # longer than a CI test may take
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as run:  # fmt: skip
        assert run.stdout is not None
        for line in run.stdout:  # streamed: a long run shows its steps as they happen
            lines.append(line)
            if line.startswith("chaos step "):
                print(f"  {line.rstrip()[:160]}", flush=True)
    elapsed = time.monotonic() - started
    steps = sum(1 for line in lines if line.startswith("chaos step "))
    faults = sum(1 for line in lines if ": Active; phases" in line)
    outcome = "every invariant held" if run.returncode == 0 else "FAILED"
    print(f"chaos: {args.examples} random sequence(s) of up to {args.steps} steps on 3 units")
    print(f"  steps run {steps}, faults active {faults}, wall time {elapsed:.0f} s: {outcome}")
    if run.returncode != 0:
        print("".join(lines)[-6000:])
        raise SystemExit(1)
