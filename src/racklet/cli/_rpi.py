"""``racklet rpi``: serve the Raspberry Pi HTTP-boot pair and print its EEPROM settings.

Thin: the commands live in :mod:`racklet.boot.rpi` (also ``python -m racklet.boot.rpi``).
"""

from __future__ import annotations

import argparse
from typing import Any

from racklet.boot.rpi import (
    add_eeprom_arguments,
    add_serve_arguments,
    run_eeprom_config,
    run_serve,
)


def add_rpi_parser(commands: Any) -> None:
    rpi = commands.add_parser("rpi", help="Raspberry Pi native HTTP boot: serve boot.img/.sig")
    sub = rpi.add_subparsers(dest="rpi_command", required=True, parser_class=type(rpi))
    add_serve_arguments(sub.add_parser("serve", help="serve the pair (HTTPS, GET/HEAD only)"))
    add_eeprom_arguments(sub.add_parser("eeprom-config", help="print boot.conf lines"))


def cmd_rpi(args: argparse.Namespace) -> int:
    return run_serve(args) if args.rpi_command == "serve" else run_eeprom_config(args)
