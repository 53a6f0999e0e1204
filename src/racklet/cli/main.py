"""``racklet``: the command line. Every error is one line on stderr and a non-zero exit.

Exit codes: 0 success, 1 the operation failed (no rack, unknown unit, refused by the
controller), 2 the command line itself is wrong, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from racklet import config as rack_config
from racklet.cli.errors import UsageError
from racklet.errors import RackletError

if TYPE_CHECKING:
    from racklet.cli._client import ApiClient

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
_port_rate = _bounded("--port-mbps", float, "Mbit/s", 1.0, 100000.0)


def _add_up(commands: Any) -> None:
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
    up.add_argument(
        "--port-mbps",
        type=_port_rate,
        default=1000.0,
        help="each unit's and BMC's switch port rate (Mbit/s; a Pi 4 or 5 has 1000)",
    )


def _add_get(commands: Any) -> None:
    get = commands.add_parser("get", help="list resources of a kind, or show one")
    get.add_argument("kind", help="racks, computeunits (units), gitsources, releases, ...")
    get.add_argument("name", nargs="?")
    get.add_argument("-o", "--output", choices=_OUTPUTS, default="table")
    get.add_argument("-l", "--selector", help="label selector, e.g. tier=edu,owner!=ci")
    get.add_argument("-w", "--watch", action="store_true", help="then print each change")


def _add_describe(commands: Any) -> None:
    describe = commands.add_parser("describe", help="show one resource in detail, with events")
    describe.add_argument("kind")
    describe.add_argument("name")


def _add_apply(commands: Any) -> None:
    apply = commands.add_parser("apply", help="create or update resources from manifests")
    apply.add_argument(
        "-f", "--filename", action="append", required=True, help="file, directory or - (stdin)"
    )
    apply.add_argument("--dry-run", action="store_true", help="validate and compare only")


def _add_delete(commands: Any) -> None:
    delete = commands.add_parser("delete", help="delete resources")
    delete.add_argument("kind", nargs="?")
    delete.add_argument("names", nargs="*")
    delete.add_argument("-f", "--filename", action="append", help="delete what files declare")
    delete.add_argument("--ignore-not-found", action="store_true")


def _add_wait(commands: Any) -> None:
    from racklet.cli._resources import duration

    wait = commands.add_parser("wait", help="wait until a resource meets a condition")
    wait.add_argument("target", help="KIND/NAME, e.g. computeunit/unit-1")
    wait.add_argument(
        "--for",
        dest="for_",
        required=True,
        help="condition=Ready[=True], delete, or jsonpath={.status.phase}=Running",
    )
    wait.add_argument("--timeout", type=duration, default=30.0, help="e.g. 90s, 2m (default 30s)")


def _add_events(commands: Any) -> None:
    events = commands.add_parser("events", help="what reconcilers did and why")
    events.add_argument("--for", dest="for_", help="only events about KIND/NAME")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def _add_init(commands: Any) -> None:
    init = commands.add_parser("init", help="create starter files (init gitops DIR)")
    init.add_argument("what", choices=["gitops"])
    init.add_argument("directory", help="a new (or empty) directory")
    init.add_argument("--units", type=_positive_units, default=5, help="without racklet.yaml")
    init.add_argument("--psu-watts", type=_watts, default=100.0, help="without racklet.yaml")


def _add_gitops(commands: Any) -> None:
    from racklet.cli._resources import duration

    gitops = commands.add_parser("gitops", help="GitOps: sync a GitSource now")
    gitops_commands = gitops.add_subparsers(
        dest="gitops_command", required=True, parser_class=_Parser
    )
    sync = gitops_commands.add_parser("sync", help="sync now and report the outcome")
    sync.add_argument("name", nargs="?", help="a GitSource (default: every one)")
    sync.add_argument("--timeout", type=duration, default=60.0, help="e.g. 30s (default 60s)")


def _add_completion(commands: Any) -> None:
    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])


def _add_power(commands: Any) -> None:
    power = commands.add_parser("power", help="power units on, off, or cycle them")
    power.add_argument("action", choices=["on", "off", "cycle"])
    power.add_argument("name", nargs="?")
    power.add_argument("--all", action="store_true", help="every unit of the rack")
    power.add_argument("--wait", action="store_true", help="wait until the units reach the phase")
    power.add_argument("--timeout", type=float, default=120.0, help="seconds to --wait")


def _add_reset(commands: Any) -> None:
    reset = commands.add_parser("reset", help="factory-reset the rack (new trust, wiped units)")
    reset.add_argument("--factory", action="store_true", required=True, help="the only kind")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _add_console(commands: Any) -> None:
    console = commands.add_parser(
        "console", help="print a unit's captured UART log, or a MicroVM's console"
    )
    console.add_argument("name", help="a unit (unit-1) or microvm/NAME")
    console.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")


def _elsewhere(module: str, function: str) -> Callable[[Any], None]:
    """A subcommand's parser that lives beside its implementation, imported only to be added."""

    def add(commands: Any) -> None:
        getattr(importlib.import_module(module), function)(commands)

    return add


_PARSERS: dict[str, Callable[[Any], None]] = {
    "up": _add_up,
    "get": _add_get,
    "describe": _add_describe,
    "apply": _add_apply,
    "delete": _add_delete,
    "wait": _add_wait,
    "events": _add_events,
    "init": _add_init,
    "gitops": _add_gitops,
    "completion": _add_completion,
    "power": _add_power,
    "reset": _add_reset,
    "release": _elsewhere("racklet.cli._release", "add_release_parser"),
    "image": _elsewhere("racklet.cli._image", "add_image_parser"),
    "pki": _elsewhere("racklet.cli._pki", "add_pki_parser"),
    "rpi": _elsewhere("racklet.cli._rpi", "add_rpi_parser"),
    "token": _elsewhere("racklet.cli._tokens", "add_token_parser"),
    "audit": _elsewhere("racklet.cli._audit", "add_audit_parser"),
    "stress": _elsewhere("racklet.cli._stress", "add_stress_parser"),
    "fault": _elsewhere("racklet.cli._faults", "add_fault_parser"),
    "slot": _elsewhere("racklet.cli._faults", "add_slot_parser"),
    "prometheus": _elsewhere("racklet.cli._prometheus", "add_prometheus_parser"),
    "top": _elsewhere("racklet.cli._top", "add_top_parser"),
    "scale": _elsewhere("racklet.cli._scale", "add_scale_parser"),
    "console": _add_console,
    "logs": _elsewhere("racklet.cli._vm_console", "add_logs_parser"),
}
"""Each subcommand's parser, in ``racklet --help``'s order."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``only``, just that subcommand's (so a command imports
    its own module, not every subcommand's: the CLI's start is paid by every command)."""
    parser = _Parser(prog=PROG, description="Run and manage a Racklet rack (twin or hardware).")
    parser.add_argument(
        "--config", help="path of racklet.yaml (default: $RACKLET_CONFIG, ./.racklet/racklet.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, add in _PARSERS.items():
        if only is None or name == only:
            add(commands)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, if it names a known one before any other option (then
    only its parser is built); None for ``--help``, a typo or nothing (the whole parser)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--config":
            skip = True
        elif arg.startswith("--config="):
            continue
        elif arg.startswith("-"):
            return None
        else:
            return arg if arg in _PARSERS else None
    return None


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
        port_bandwidth_bps=args.port_mbps * 1e6,
    )


_TARGET_PHASE = {"on": "Running", "off": "Off", "cycle": "Running"}


def cmd_power(args: argparse.Namespace) -> int:
    if args.all == bool(args.name):
        raise UsageError("name one unit or give --all (not both)")
    config = _load(args)
    names = [u.name for u in config.units] if args.all else [config.unit(args.name).name]
    cycles: dict[str, str] = {}
    from racklet.cli._client import ApiClient

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
        from racklet.cli._kinds import split_ref
        from racklet.cli._vm_console import print_vm_console

        kind, name = split_ref(name)
        if kind.name == "MicroVM":
            return print_vm_console(config, name, args.follow)
        if kind.name != "ComputeUnit":
            raise UsageError(f"a console is a unit's or a microvm's, not a {kind.name}'s")
    unit = config.unit(name)
    import asyncio

    return asyncio.run(_console(config, unit, args.follow))


async def _console(
    config: rack_config.RackConfig, unit: rack_config.UnitConfig, follow: bool
) -> int:
    import asyncio

    from racklet.cli._client import bmc_identity
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
    from racklet.cli._kinds import split_ref
    from racklet.cli._vm_console import print_vm_console

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


def _elsewhere_command(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), function
        )
        return command(args)

    return run


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": cmd_up,
    "reset": cmd_reset,
    "get": _elsewhere_command("racklet.cli._resources", "cmd_get"),
    "describe": _elsewhere_command("racklet.cli._resources", "cmd_describe"),
    "apply": _elsewhere_command("racklet.cli._apply", "cmd_apply"),
    "delete": _elsewhere_command("racklet.cli._resources", "cmd_delete"),
    "wait": _elsewhere_command("racklet.cli._resources", "cmd_wait"),
    "events": _elsewhere_command("racklet.cli._resources", "cmd_events"),
    "power": cmd_power,
    "console": cmd_console,
    "logs": cmd_logs,
    "init": cmd_init,
    "gitops": cmd_gitops,
    "completion": cmd_completion,
    "release": _elsewhere_command("racklet.cli._release", "cmd_release"),
    "image": _elsewhere_command("racklet.cli._image", "cmd_image"),
    "pki": _elsewhere_command("racklet.cli._pki", "cmd_pki"),
    "rpi": _elsewhere_command("racklet.cli._rpi", "cmd_rpi"),
    "token": _elsewhere_command("racklet.cli._tokens", "cmd_token"),
    "audit": _elsewhere_command("racklet.cli._audit", "cmd_audit"),
    "stress": _elsewhere_command("racklet.cli._stress", "cmd_stress"),
    "fault": _elsewhere_command("racklet.cli._faults", "cmd_fault"),
    "slot": _elsewhere_command("racklet.cli._faults", "cmd_slot"),
    "prometheus": _elsewhere_command("racklet.cli._prometheus", "cmd_prometheus"),
    "top": _elsewhere_command("racklet.cli._top", "cmd_top"),
    "scale": _elsewhere_command("racklet.cli._scale", "cmd_scale"),
}
"""What each subcommand runs; a module of its own is imported when the command runs."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        words = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(_command_word(words)).parse_args(words)
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
