"""Run benchmarks by name: ``python -m bench rack_up``; no name runs them all.

``python -m bench NAME --help`` is the benchmark's own help. With ``BENCH_CHECK_ARGUMENTS=1``
in the environment a benchmark only parses its arguments (strictly: an argument it does not
know is an error even where it parses leniently) and stops: the docs tests run every command
of ``docs/benchmarks.md`` so, in seconds, and a renamed flag fails them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

CHECK_ARGUMENTS = "BENCH_CHECK_ARGUMENTS"

BENCHMARKS = [
    "rack_up",
    "redfish_get",
    "redfish_cpu",
    "gitops_latency",
    "factory_reset",
    "control_plane_store",
    "control_plane_scale",
    "unit_reconcile",
    "boot_server",
    "rack_boot",
    "unit_download",
    "login_guessing",
    "supervise",
    "audit_overhead",
    "identity",
    "loop_lag_fuzz",
    "energy_accuracy",
    "faults",
    "dashboard",
    "dashboard_history",
    "fan_control",
    "scrape_cost",
    "switch_relay",
    "switch_boot",
    "p2p_boot",
    "switch_rack_up",
    "microvm",
    "chaos",
    "power_capping",
    "microvm_reschedule",
    "cli_start",
    "controller_idle",
    "redfish_look",
]


def _stop_after_parsing(name: str) -> None:
    """Make the benchmark's first parse its last act: any argument it does not know is an
    error (several benchmarks use ``parse_known_args`` and would ignore a stale flag), a good
    parse exits 0. Each benchmark builds its parser inside ``main``, so this is the one place
    that reaches them all."""
    parse = argparse.ArgumentParser.parse_known_args

    def check(
        self: argparse.ArgumentParser,
        args: Sequence[str] | None = None,
        namespace: Any = None,
    ) -> NoReturn:
        _parsed, unknown = parse(self, args, namespace)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        print(f"bench {name}: arguments OK")
        raise SystemExit(0)

    argparse.ArgumentParser.parse_known_args = check  # type: ignore[assignment,method-assign]


def main() -> int:
    # No -h of its own: `python -m bench NAME --help` reaches the benchmark's parser.
    parser = argparse.ArgumentParser(prog="python -m bench", add_help=False)
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(BENCHMARKS)}")
    args, rest = parser.parse_known_args()
    if not args.names and set(rest) & {"-h", "--help"}:
        parser.print_help()
        return 0
    for name in args.names:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}")
    check = os.environ.get(CHECK_ARGUMENTS) == "1"
    if check and len(args.names) != 1:
        parser.error(f"{CHECK_ARGUMENTS}=1 checks one benchmark's arguments at a time")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        if check:
            _stop_after_parsing(name)
        module.main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
