"""``racklet``: the command line. Every error is one line on stderr and a non-zero exit.

Exit codes: 0 success, 1 the operation failed (no rack, unknown unit, refused by the
controller), 2 the command line itself is wrong, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from racklet import config as rack_config
from racklet.cli import _format
from racklet.cli._client import ApiClient
from racklet.cli.errors import UsageError
from racklet.errors import RackletError

PROG = "racklet"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_units(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--units takes a whole number, got {text!r}") from None
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError(f"--units must be between 1 and 16, got {value}")
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed takes a number, got {text!r}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"--speed must be > 0 and <= 1000, got {value:g}")
    return value


def _payload_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--payload-bytes takes bytes, got {text!r}") from None
    if not 4096 <= value <= 1 << 30:
        raise argparse.ArgumentTypeError("--payload-bytes must be between 4096 and 1073741824")
    return value


def _watts(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--psu-watts takes watts, got {text!r}") from None
    if not 0 < value <= 10000:
        raise argparse.ArgumentTypeError(f"--psu-watts must be > 0 and <= 10000, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run and manage a Racklet rack (twin or hardware).")
    parser.add_argument(
        "--config", help="path of racklet.yaml (default: $RACKLET_CONFIG, ./.racklet/racklet.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = commands.add_parser("up", help="start a twin rack: hardware side and management side")
    up.add_argument("--units", type=_positive_units, default=5, help="compute units, 1 to 16")
    up.add_argument("--speed", type=_speed, default=1.0, help="twin clock speed (1 = real time)")
    up.add_argument("--state-dir", type=Path, default=rack_config.DEFAULT_STATE_DIR)
    up.add_argument("--profile", default="raspberry-pi-4", help="unit hardware profile")
    up.add_argument("--psu-watts", type=_watts, default=100.0, help="busbar supply rating")
    up.add_argument("--payload-bytes", type=_payload_size, default=65536, help="boot payload size")
    up.add_argument("--store", default="sqlite", help="sqlite (default) or etcd://HOST:PORT")

    get = commands.add_parser("get", help="list resources")
    get.add_argument("kind", choices=["units", "unit", "computeunits"])
    get.add_argument("name", nargs="?")
    get.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")

    describe = commands.add_parser("describe", help="show one resource in detail")
    describe.add_argument("kind", choices=["unit", "units", "computeunit"])
    describe.add_argument("name")

    power = commands.add_parser("power", help="power units on, off, or cycle them")
    power.add_argument("action", choices=["on", "off", "cycle"])
    power.add_argument("name", nargs="?")
    power.add_argument("--all", action="store_true", help="every unit of the rack")
    power.add_argument("--wait", action="store_true", help="wait until the units reach the phase")
    power.add_argument("--timeout", type=float, default=120.0, help="seconds to --wait")

    console = commands.add_parser("console", help="print a unit's captured UART log")
    console.add_argument("name")
    console.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    return parser


def _load(args: argparse.Namespace) -> rack_config.RackConfig:
    return rack_config.load(args.config)


def cmd_up(args: argparse.Namespace) -> int:
    from racklet.cli._up import up

    return up(
        args.state_dir,
        units=args.units,
        speed=args.speed,
        profile=args.profile,
        psu_rated_watts=args.psu_watts,
        payload_bytes=args.payload_bytes,
        store=args.store,
    )


def cmd_get(args: argparse.Namespace) -> int:
    config = _load(args)
    with ApiClient(config) as api:
        data: Any
        if args.name:
            config.unit(args.name)
            data = api.unit(args.name)
            units = [data]
        else:
            units = api.units()
            data = {"apiVersion": "racklet.dev/v1alpha1", "kind": "ComputeUnitList", "items": units}
    if args.output == "json":
        print(_format.as_json(data))
    elif args.output == "yaml":
        print(_format.as_yaml(data))
    else:
        print(_format.units_table(units))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    config = _load(args)
    config.unit(args.name)
    with ApiClient(config) as api:
        unit = api.unit(args.name)
        events = api.events(args.name)
    print(_format.describe_unit(unit, events))
    return 0


_TARGET_PHASE = {"on": "Running", "off": "Off", "cycle": "Running"}


def cmd_power(args: argparse.Namespace) -> int:
    if args.all == bool(args.name):
        raise UsageError("name one unit or give --all (not both)")
    config = _load(args)
    names = [u.name for u in config.units] if args.all else [config.unit(args.name).name]
    with ApiClient(config) as api:
        for name in names:
            if args.action == "cycle":
                api.power_cycle(name)
                print(f"computeunit/{name} power cycle requested")
            else:
                api.set_power(name, "On" if args.action == "on" else "Off")
                print(f"computeunit/{name} power {args.action}")
        if args.wait:
            _wait_for_phase(api, names, _TARGET_PHASE[args.action], args.timeout)
    return 0


def _wait_for_phase(api: ApiClient, names: list[str], phase: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        for name in sorted(pending):
            status = api.unit(name).get("status") or {}
            if status.get("phase") == phase:
                pending.discard(name)
                print(f"computeunit/{name} is {phase}")
            elif status.get("phase") == "BootFailed" and phase == "Running":
                raise RackletError(f"{name} failed to boot: {_reason(status)}")
        if pending and time.monotonic() > deadline:
            raise RackletError(
                f"timed out after {timeout:g} s waiting for {', '.join(sorted(pending))}"
            )
        if pending:
            time.sleep(0.5)


def _reason(status: dict[str, Any]) -> str:
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True" and cond.get("message"):
            return str(cond["message"])
    return "no reason recorded"


def cmd_console(args: argparse.Namespace) -> int:
    config = _load(args)
    unit = config.unit(args.name)
    return asyncio.run(_console(config, unit, args.follow))


async def _console(
    config: rack_config.RackConfig, unit: rack_config.UnitConfig, follow: bool
) -> int:
    from racklet.redfish import RedfishClient

    client = RedfishClient(
        unit.bmc.url,
        unit.bmc.username,
        unit.bmc.password,
        ca_bundle=Path(config.api.ca_bundle),
    )
    try:
        seen = 0
        while True:
            lines = await client.console_entries(unit.name, skip=seen)
            for line in lines:
                print(line, flush=True)
            seen += len(lines)
            if not follow:
                return 0
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()


_COMMANDS = {
    "up": cmd_up,
    "get": cmd_get,
    "describe": cmd_describe,
    "power": cmd_power,
    "console": cmd_console,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RackletError as exc:
        message = str(exc).splitlines()
        print(f"{PROG}: error: {message[0] if message else type(exc).__name__}", file=sys.stderr)
        for extra in message[1:]:
            print(f"  {extra}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
