"""``racklet stress NAME --cpu PERCENT --for DURATION``: keep a share of a running unit's
cores busy for a while, to watch its power and temperature follow (docs/energy.md).

The controller records the job and hands it to the unit's OS agent with its next heartbeat
(``racklet.controller._stress``); this command only asks. An operator token of that unit, or
the admin token, may; the API audits the request. Bad input is refused here with one line
(a share outside 0..100 %, a duration outside (0, 24 h]); a unit that is not Running is
refused by the controller with the reason.
"""

from __future__ import annotations

import argparse
from typing import Any

from racklet import config as rack_config
from racklet.cli._client import ApiClient
from racklet.cli._resources import duration

MAX_SECONDS = 86_400.0


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage 0..100, got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"the share of cores is 0..100 %, got {text}")
    return value


def _stress_duration(text: str) -> float:
    seconds = duration(text)
    if not 0.0 < seconds <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"a stress job lasts more than 0 s and at most 24h, got {text}"
        )
    return seconds


def add_stress_parser(commands: Any) -> None:
    stress = commands.add_parser(
        "stress", help="keep a share of a running unit's cores busy for a while"
    )
    stress.add_argument("name", help="the unit, e.g. unit-2")
    stress.add_argument(
        "--cpu", type=_percent, required=True, help="share of its cores to keep busy, 0..100 (%%)"
    )
    stress.add_argument(
        "--for",
        dest="seconds",
        type=_stress_duration,
        required=True,
        help="how long, on the unit's clock: 60s, 5m, 1h",
    )


def cmd_stress(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    name = config.unit(args.name).name
    with ApiClient(config) as api:
        api.request(
            "POST",
            f"/api/v1/computeunits/{name}/stress",
            json={"cpuPercent": args.cpu, "seconds": args.seconds},
        )
    print(
        f"computeunit/{name}: stress {args.cpu:g} % of its cores for {args.seconds:g} s requested"
    )
    return 0
