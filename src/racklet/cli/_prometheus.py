"""``racklet prometheus config [--dir D] [--interval 15s]``: a scrape configuration for the rack.

Writes, under ``<state-dir>/prometheus/`` unless ``--dir`` says otherwise:

- ``prometheus.yml``: one job per kind of target (controller, bmc, agent, rmc), each over
  HTTPS trusting only the rack CA (``tls_config.ca_file``), each reading its targets from a
  file (``file_sd_configs``), and the recording rules below;
- ``<state-dir>/prometheus/targets/<job>.json`` (there whatever ``--dir`` says: the running
  rack keeps them current): the targets with their ``unit`` label. Prometheus re-reads these
  files when they change, and the controller rewrites them (atomically) when a unit is pulled
  (its agent's target goes; its BMC's stays and says ``Absent``), put back, or a new board
  reports in (:mod:`racklet.controller._prometheus_targets`), so a running Prometheus follows
  hot-swap without a restart;
- ``racklet.rules.yml``: recording rules that turn the counters of a sped-up twin back into
  watts. The twin's counters advance in simulated seconds while Prometheus divides by wall
  seconds, so ``rate()`` of a rack at ``--speed 10`` is ten times the power; the RMC
  exports ``racklet_twin_speed`` (absent on hardware, where speed is 1) and the rules divide
  by it (``docs/prometheus.md``).

Every ``/metrics`` of the rack is open for reading (as on a BMC: no secret in the scrape
configuration); if a target starts to require credentials, this is where they go.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from racklet import config as rack_config
from racklet.cli.errors import UsageError
from racklet.config import write_atomic

RULES_FILE = "racklet.rules.yml"
SPEED = "max(racklet_twin_speed) or vector(1)"
"""The twin's speed as one scalar-like vector; 1 where nothing exports it (hardware)."""


def recording_rules() -> dict[str, Any]:
    """Watts from energy counters, in simulated seconds whatever the twin's speed."""

    def per_second(expression: str) -> str:
        return f"{expression} / on() group_left() ({SPEED})"

    rules = [
        {
            "record": "racklet:unit_power_watts:rate1m",
            "expr": per_second("rate(racklet_unit_energy_joules_total[1m])"),
        },
        {
            "record": "racklet:rack_power_watts:rate1m",
            "expr": per_second("rate(racklet_rack_energy_joules_total[1m])"),
        },
    ]
    return {"groups": [{"name": "racklet", "rules": rules}]}


def _interval(text: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*(ms|s|m)", text):
        raise argparse.ArgumentTypeError(f"--interval takes a duration like 5s or 1m, got {text!r}")
    return text


def add_prometheus_parser(commands: Any) -> None:
    prometheus = commands.add_parser("prometheus", help="Prometheus: scrape the rack's metrics")
    sub = prometheus.add_subparsers(dest="prometheus_command", required=True)
    config = sub.add_parser("config", help="write a scrape configuration for the running rack")
    config.add_argument("--dir", type=Path, help="where to write (default <state-dir>/prometheus)")
    config.add_argument("--interval", type=_interval, default="15s", help="scrape interval")


def targets(config: rack_config.RackConfig) -> dict[str, list[dict[str, Any]]]:
    """One file_sd document per job, from ``racklet.yaml`` (the rack corrects it live)."""
    for unit in config.units:
        if urlsplit(unit.bmc.url).hostname is None:
            raise UsageError(f"racklet.yaml names an endpoint without a host: {unit.bmc.url!r}")
    from racklet.controller._prometheus_targets import scrape_targets  # the controller: heavy

    return scrape_targets(config)


def scrape_config(config: rack_config.RackConfig, directory: Path, interval: str) -> dict[str, Any]:
    from racklet.controller._prometheus_targets import JOBS, TARGETS_DIR

    ca = str(config.layout.ca_cert.resolve())
    live = config.layout.root / TARGETS_DIR
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str((directory / RULES_FILE).resolve())],
        "scrape_configs": [
            {
                "job_name": f"racklet-{job}",
                "scheme": "https",
                "metrics_path": "/metrics",
                # Every listener's certificate comes from the rack CA and names 127.0.0.1.
                "tls_config": {"ca_file": ca},
                "file_sd_configs": [{"files": [str((live / f"{job}.json").resolve())]}],
            }
            for job in JOBS
        ],
    }


def write_config(config: rack_config.RackConfig, directory: Path, interval: str) -> Path:
    """Write the three parts; return the path of ``prometheus.yml``."""
    from racklet.controller._prometheus_targets import TARGETS_DIR, write_targets

    documents = targets(config)
    write_targets(config.layout.root / TARGETS_DIR, documents)
    write_atomic(directory / RULES_FILE, yaml.safe_dump(recording_rules(), sort_keys=False))
    main = directory / "prometheus.yml"
    write_atomic(main, yaml.safe_dump(scrape_config(config, directory, interval), sort_keys=False))
    return main


def cmd_prometheus(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    directory = args.dir or Path(config.state_dir) / "prometheus"
    main = write_config(config, directory, args.interval)
    count = sum(len(group["targets"]) for groups in targets(config).values() for group in groups)
    print(f"wrote {main} ({count} targets; run: prometheus --config.file={main})")
    return 0
