"""``racklet scale microvmset/NAME --replicas N``: change how many VMs a set keeps.

Only asks: the command writes ``spec.replicas`` (a merge patch, so nothing else of the spec
is touched) and the controller creates or deletes VMs. ``--replicas`` below 0 or above the
set's limit is refused here with one line; the API refuses it too, for any other client.
"""

from __future__ import annotations

import argparse
from typing import Any

from racklet import config as rack_config
from racklet.api import MAX_REPLICAS
from racklet.cli._client import ApiClient
from racklet.cli._kinds import split_ref
from racklet.cli.errors import UsageError

SCALABLE = ("MicroVMSet",)


def _replicas(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--replicas takes a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"--replicas must be 0 to {MAX_REPLICAS}, got {value}")
    return value


def add_scale_parser(commands: Any) -> None:
    scale = commands.add_parser("scale", help="set how many VMs a MicroVMSet keeps")
    scale.add_argument("name", help="microvmset/NAME")
    scale.add_argument("--replicas", type=_replicas, required=True, help="the VMs to keep")


def cmd_scale(args: argparse.Namespace) -> int:
    kind, name = split_ref(args.name)
    if kind.name not in SCALABLE:
        raise UsageError(f"only a microvmset scales, not a {kind.name.lower()}")
    with ApiClient(rack_config.load(args.config)) as api:
        api.patch(kind.plural, name, {"spec": {"replicas": args.replicas}})
    print(f"{kind.name.lower()}/{name} scaled to {args.replicas}")
    return 0
