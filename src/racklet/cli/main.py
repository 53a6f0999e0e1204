"""``racklet``: the command line. Every error is one line on stderr and a non-zero exit.

Exit codes: 0 success, 1 the operation failed (no rack, unknown unit, refused by the
controller), 2 the command line itself is wrong, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from racklet import config as rack_config
from racklet.cli._apply import cmd_apply
from racklet.cli._audit import add_audit_parser, cmd_audit
from racklet.cli._client import ApiClient, bmc_identity
from racklet.cli._faults import add_fault_parser, add_slot_parser, cmd_fault, cmd_slot
from racklet.cli._image import add_image_parser, cmd_image
from racklet.cli._kinds import split_ref
from racklet.cli._pki import add_pki_parser, cmd_pki
from racklet.cli._prometheus import add_prometheus_parser, cmd_prometheus
from racklet.cli._release import add_release_parser, cmd_release
from racklet.cli._resources import cmd_delete, cmd_describe, cmd_events, cmd_get, cmd_wait, duration
from racklet.cli._rpi import add_rpi_parser, cmd_rpi
from racklet.cli._scale import add_scale_parser, cmd_scale
from racklet.cli._stress import add_stress_parser, cmd_stress
from racklet.cli._tokens import add_token_parser, cmd_token
from racklet.cli._top import add_top_parser, cmd_top
from racklet.cli._vm_console import add_logs_parser, print_vm_console
from racklet.cli.errors import UsageError
from racklet.errors import RackletError

PROG = "racklet"
_OUTPUTS = ("table", "wide", "json", "yaml", "name")
N = TypeVar("N", int, float)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _bounded(
    flag: str, convert: Callable[[str], N], what: str, low: N, high: N, *, low_open: bool = False
) -> Callable[[str], N]:
    """An argparse type for a number in a range, with a one-line message for each way to miss."""
    if low_open:
        allowed = f"> {low:g} and <= {high:g}"
    elif isinstance(low, int):
        allowed = f"between {low} and {high}"
    else:
        allowed = f"{low:g} to {high:g}"

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes {what}, got {text!r}") from None
        inside = low < value <= high if low_open else low <= value <= high
        if not inside:
            raise argparse.ArgumentTypeError(f"{flag} must be {allowed}, got {value:g}")
        return value

    return parse


_positive_units = _bounded("--units", int, "a whole number", 1, 16)
_speed = _bounded("--speed", float, "a number", 0.0, 1000.0, low_open=True)
_payload_size = _bounded("--payload-bytes", int, "bytes", 4096, 1 << 30)
_watts = _bounded("--psu-watts", float, "watts", 0.0, 10000.0, low_open=True)
_uplink = _bounded("--uplink-mbps", float, "Mbit/s", 1.0, 100000.0)


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
    up.add_argument("--controllers", type=int, default=1, help="1 to 3; above 1 needs etcd")
    up.add_argument(
        "--reassign-ports", action="store_true", help="new ports instead of the recorded ones"
    )
    up.add_argument(
        "--uplink-mbps", type=_uplink, default=1000.0, help="the switch uplink's rate (Mbit/s)"
    )

    get = commands.add_parser("get", help="list resources of a kind, or show one")
    get.add_argument("kind", help="racks, computeunits (units), gitsources, releases, ...")
    get.add_argument("name", nargs="?")
    get.add_argument("-o", "--output", choices=_OUTPUTS, default="table")
    get.add_argument("-l", "--selector", help="label selector, e.g. tier=edu,owner!=ci")
    get.add_argument("-w", "--watch", action="store_true", help="then print each change")

    describe = commands.add_parser("describe", help="show one resource in detail, with events")
    describe.add_argument("kind")
    describe.add_argument("name")

    apply = commands.add_parser("apply", help="create or update resources from manifests")
    apply.add_argument(
        "-f", "--filename", action="append", required=True, help="file, directory or - (stdin)"
    )
    apply.add_argument("--dry-run", action="store_true", help="validate and compare only")

    delete = commands.add_parser("delete", help="delete resources")
    delete.add_argument("kind", nargs="?")
    delete.add_argument("names", nargs="*")
    delete.add_argument("-f", "--filename", action="append", help="delete what files declare")
    delete.add_argument("--ignore-not-found", action="store_true")

    wait = commands.add_parser("wait", help="wait until a resource meets a condition")
    wait.add_argument("target", help="KIND/NAME, e.g. computeunit/unit-1")
    wait.add_argument(
        "--for",
        dest="for_",
        required=True,
        help="condition=Ready[=True], delete, or jsonpath={.status.phase}=Running",
    )
    wait.add_argument("--timeout", type=duration, default=30.0, help="e.g. 90s, 2m (default 30s)")

    events = commands.add_parser("events", help="what reconcilers did and why")
    events.add_argument("--for", dest="for_", help="only events about KIND/NAME")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    init = commands.add_parser("init", help="create starter files (init gitops DIR)")
    init.add_argument("what", choices=["gitops"])
    init.add_argument("directory", help="a new (or empty) directory")
    init.add_argument("--units", type=_positive_units, default=5, help="without racklet.yaml")
    init.add_argument("--psu-watts", type=_watts, default=100.0, help="without racklet.yaml")

    gitops = commands.add_parser("gitops", help="GitOps: sync a GitSource now")
    gitops_commands = gitops.add_subparsers(
        dest="gitops_command", required=True, parser_class=_Parser
    )
    sync = gitops_commands.add_parser("sync", help="sync now and report the outcome")
    sync.add_argument("name", nargs="?", help="a GitSource (default: every one)")
    sync.add_argument("--timeout", type=duration, default=60.0, help="e.g. 30s (default 60s)")

    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])

    power = commands.add_parser("power", help="power units on, off, or cycle them")
    power.add_argument("action", choices=["on", "off", "cycle"])
    power.add_argument("name", nargs="?")
    power.add_argument("--all", action="store_true", help="every unit of the rack")
    power.add_argument("--wait", action="store_true", help="wait until the units reach the phase")
    power.add_argument("--timeout", type=float, default=120.0, help="seconds to --wait")

    reset = commands.add_parser("reset", help="factory-reset the rack (new trust, wiped units)")
    reset.add_argument("--factory", action="store_true", required=True, help="the only kind")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    add_release_parser(commands)
    add_image_parser(commands)
    add_pki_parser(commands)
    add_rpi_parser(commands)
    add_token_parser(commands)
    add_audit_parser(commands)
    add_stress_parser(commands)
    add_fault_parser(commands)
    add_slot_parser(commands)
    add_prometheus_parser(commands)
    add_top_parser(commands)
    add_scale_parser(commands)

    console = commands.add_parser(
        "console", help="print a unit's captured UART log, or a MicroVM's console"
    )
    console.add_argument("name", help="a unit (unit-1) or microvm/NAME")
    console.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    add_logs_parser(commands)
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
        controllers=args.controllers,
        reassign_ports=args.reassign_ports,
        uplink_bandwidth_bps=args.uplink_mbps * 1e6,
    )


_TARGET_PHASE = {"on": "Running", "off": "Off", "cycle": "Running"}


def cmd_power(args: argparse.Namespace) -> int:
    if args.all == bool(args.name):
        raise UsageError("name one unit or give --all (not both)")
    config = _load(args)
    names = [u.name for u in config.units] if args.all else [config.unit(args.name).name]
    cycles: dict[str, str] = {}
    with ApiClient(config) as api:
        for name in names:
            if args.action == "cycle":
                cycles[name] = api.power_cycle(name)
                print(f"computeunit/{name} power cycle requested")
            else:
                api.set_power(name, "On" if args.action == "on" else "Off")
                print(f"computeunit/{name} power {args.action}")
        if args.wait:
            deadline = time.monotonic() + args.timeout
            _wait_for_cycles(api, cycles, args.timeout)
            left = max(0.0, deadline - time.monotonic())
            _wait_for_phase(api, names, _TARGET_PHASE[args.action], left)
    return 0


_CYCLE_REFUSED = ("PowerCycleSkipped", "PowerCycleFailed")


def _wait_for_cycles(api: ApiClient, cycles: dict[str, str], timeout: float) -> None:
    """Until the controller has sent each cycle to its BMC (a unit still Running before its
    reset is not yet cycled): ``lastPowerCycle`` names the request and nothing is pending."""
    deadline = time.monotonic() + timeout
    pending = {name: request for name, request in cycles.items() if request}
    while pending:
        for name, request in sorted(pending.items()):
            status = api.unit(name).get("status") or {}
            if status.get("lastPowerCycle") == request and (
                status.get("pendingPowerCycle") != request
            ):
                for event in api.events(name):  # handled: cycled, or why not
                    if event.get("reason") in _CYCLE_REFUSED and request in str(
                        event.get("message")
                    ):
                        raise RackletError(f"{name}: {event.get('message')}")
                del pending[name]
        if pending and time.monotonic() > deadline:
            raise RackletError(
                f"timed out after {timeout:g} s waiting for the controller to cycle "
                f"{', '.join(sorted(pending))}"
            )
        if pending:
            time.sleep(0.2)


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
    name = args.name
    if "/" in name:
        kind, name = split_ref(name)
        if kind.name == "MicroVM":
            return print_vm_console(config, name, args.follow)
        if kind.name != "ComputeUnit":
            raise UsageError(f"a console is a unit's or a microvm's, not a {kind.name}'s")
    unit = config.unit(name)
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
        expect=bmc_identity(config, unit.name),
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


def cmd_logs(args: argparse.Namespace) -> int:
    kind, name = split_ref(args.name)
    if kind.name != "MicroVM":
        raise UsageError(f"logs are a microvm's (microvm/NAME); a unit's: racklet console {name}")
    return print_vm_console(_load(args), name, args.follow)


def cmd_init(args: argparse.Namespace) -> int:
    from racklet.cli._gitops import cmd_init as init

    return init(args)


def cmd_gitops(args: argparse.Namespace) -> int:
    from racklet.cli._gitops import cmd_gitops_sync

    return cmd_gitops_sync(args)


def cmd_completion(args: argparse.Namespace) -> int:
    from racklet.cli._completion import script

    print(script(build_parser(), args.shell))
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from racklet.cli._reset import factory_reset

    return factory_reset(args.config, yes=args.yes)


_COMMANDS = {
    "up": cmd_up,
    "reset": cmd_reset,
    "get": cmd_get,
    "describe": cmd_describe,
    "apply": cmd_apply,
    "delete": cmd_delete,
    "wait": cmd_wait,
    "events": cmd_events,
    "power": cmd_power,
    "console": cmd_console,
    "logs": cmd_logs,
    "init": cmd_init,
    "gitops": cmd_gitops,
    "completion": cmd_completion,
    "release": cmd_release,
    "image": cmd_image,
    "pki": cmd_pki,
    "rpi": cmd_rpi,
    "token": cmd_token,
    "audit": cmd_audit,
    "stress": cmd_stress,
    "fault": cmd_fault,
    "slot": cmd_slot,
    "prometheus": cmd_prometheus,
    "top": cmd_top,
    "scale": cmd_scale,
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
