"""Run benchmarks by name: ``python -m bench rack_up``; no name runs them all."""

from __future__ import annotations

import argparse
import importlib
import sys

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
]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(BENCHMARKS)}")
    args, rest = parser.parse_known_args()
    for name in args.names:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        module.main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
