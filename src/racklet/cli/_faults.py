"""``racklet fault inject|list|describe|clear`` and ``racklet slot list|pull|insert``.

A fault is a ``Fault`` resource created through the API (the controller's Fault reconciler
asks the hardware side for it), so it is declared, listed and recorded like any kind and
GitOps can carry it too. Slots are hot-swapped at once through the hardware side's control
endpoint, with the controller's identity from the state dir (an admin's command on the
management host, as ``racklet pki`` is).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import re
import secrets
import time
from pathlib import Path
from typing import Any, get_args

from racklet import config as rack_config
from racklet.api import ENROLL_APPROVED_ANNOTATION, RACK_WIDE, FaultType, parse, to_dict
from racklet.cli import _format
from racklet.cli._client import ApiClient
from racklet.cli.errors import RackNotRunning, UsageError
from racklet.errors import RackletError

FAULT_TYPES: tuple[str, ...] = get_args(FaultType)
_SETTLE_SECONDS = 15.0


def _fault_type(text: str) -> str:
    """``partition``, ``busbar-outage`` or ``BusbarOutage``: the type as the API spells it."""
    wanted = re.sub(r"[-_ ]", "", text).lower()
    for name in FAULT_TYPES:
        if name.lower() == wanted:
            return str(name)
    raise argparse.ArgumentTypeError(
        f"unknown fault type {text!r} (one of: {', '.join(FAULT_TYPES)})"
    )


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE, got {text!r}")
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for convert in (int, float):
            try:
                number = convert(raw)
            except ValueError:
                continue
            if math.isfinite(number):  # "nan" and "inf" stay words (a sensor mode is "nan")
                value = number
            break
    return key, value


def add_fault_parser(commands: Any) -> None:
    fault = commands.add_parser("fault", help="inject, list, describe and clear faults")
    sub = fault.add_subparsers(dest="fault_command", required=True, parser_class=type(fault))
    inject = sub.add_parser("inject", help="declare a fault (a Fault resource)")
    inject.add_argument("type", type=_fault_type, help=", ".join(FAULT_TYPES))
    inject.add_argument("--name", help="the Fault's name (default: TYPE-<random>)")
    inject.add_argument("--unit", action="append", default=[], help="a target unit (repeat)")
    inject.add_argument("--slots", help="target slots, e.g. 3 or 1-4 or 1-2,5")
    inject.add_argument("-l", "--selector", action="append", default=[], help="label KEY=VALUE")
    inject.add_argument("--random", type=int, help="hit only N of the selected units")
    inject.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    inject.add_argument("-p", "--param", type=_param, action="append", default=[], help="KEY=VALUE")
    inject.add_argument("--duration", help="e.g. 30s, 2m (default: until cleared)")
    inject.add_argument("--after", help="start after a delay, e.g. 10s")
    inject.add_argument("--at", help="start at a time, e.g. 2026-05-01T10:00:00Z")
    inject.add_argument("--no-wait", action="store_true", help="do not wait for it to start")
    sub.add_parser("list", help="every Fault and its phase")
    describe = sub.add_parser("describe", help="one Fault with its conditions and events")
    describe.add_argument("name")
    clear = sub.add_parser("clear", help="clear a fault (it stays as a record)")
    clear.add_argument("names", nargs="*")
    clear.add_argument("--all", action="store_true", help="every active or pending fault")


def add_slot_parser(commands: Any) -> None:
    slot = commands.add_parser("slot", help="hot-swap: list slots, pull or insert a board")
    sub = slot.add_subparsers(dest="slot_command", required=True, parser_class=type(slot))
    sub.add_parser("list", help="every slot and whether a board is in it")
    pull = sub.add_parser("pull", help="pull the board out of a slot")
    pull.add_argument("slot", type=int)
    insert = sub.add_parser("insert", help="insert a board into an empty slot")
    insert.add_argument("slot", type=int)
    insert.add_argument("--profile", help="the board's profile, e.g. raspberry-pi-5")
    insert.add_argument(
        "--new-board", action="store_true", help="a new machine: new BMC identity, empty disk"
    )
    approve = sub.add_parser(
        "approve", help="enrol the new board in a slot (when the rack's autoEnroll is off)"
    )
    approve.add_argument("slot", type=int)


def _manifest(args: argparse.Namespace) -> dict[str, Any]:
    name = args.name or f"{args.type.lower()}-{secrets.token_hex(3)}"
    selector: dict[str, Any] = {}
    if args.unit:
        selector["names"] = args.unit
    if args.slots:
        selector["slots"] = args.slots
    if args.selector:
        labels = dict(_param(text) for text in args.selector)
        selector["labels"] = {key: str(value) for key, value in labels.items()}
    if args.random is not None:
        selector.update(random=args.random, seed=args.seed)
    spec: dict[str, Any] = {"type": args.type, "params": dict(args.param), "selector": selector}
    if args.type not in RACK_WIDE and not selector:
        raise UsageError(f"{args.type} needs targets: --unit, --slots, -l KEY=VALUE or --random")
    if args.duration:
        spec["duration"] = args.duration
    if args.after or args.at:
        spec["start"] = {"after": args.after} if args.after else {"at": args.at}
    manifest = {"apiVersion": "racklet.dev/v1alpha1", "kind": "Fault",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
    return to_dict(parse(manifest))  # a bad manifest is one line here, not at the API


def _settle(api: ApiClient, name: str, leave: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fault = api.get("faults", name)
        except RackNotRunning:  # a ControllerCrash took the API down: it is restarted
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        phase = (fault.get("status") or {}).get("phase", "Pending")
        if phase != leave or time.monotonic() > deadline:
            return fault
        time.sleep(0.2)


def _summary(fault: dict[str, Any]) -> str:
    status = fault.get("status") or {}
    targets = ", ".join(status.get("targets") or []) or "the rack"
    return f"fault/{fault['metadata']['name']} {status.get('phase', 'Pending')} on {targets}: " + (
        status.get("message") or "waiting for its start"
    )


def cmd_fault(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    with ApiClient(config) as api:
        if args.fault_command == "inject":
            manifest = _manifest(args)
            api.create("faults", manifest)
            name = manifest["metadata"]["name"]
            if args.no_wait or args.after or args.at:
                print(f"fault/{name} created")
                return 0
            fault = _settle(api, name, "Pending", _SETTLE_SECONDS)
            if (fault.get("status") or {}).get("phase") == "Failed":
                raise RackletError(f"fault/{name} failed: {fault['status'].get('message')}")
            print(_summary(fault))
            return 0
        if args.fault_command == "list":
            items = api.list_kind("faults").get("items") or []
            print(_format.table("Fault", items))
            return 0
        if args.fault_command == "describe":
            fault = api.get("faults", args.name)
            events = [
                e
                for e in api.events(args.name)
                if (e.get("involvedObject") or {}).get("kind") in (None, "Fault")
            ]
            print(_format.describe(fault, events))
            return 0
        return _clear(api, args)


def _clear(api: ApiClient, args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        raise UsageError("name the faults to clear or give --all (not both)")
    names = args.names
    if args.all:
        items = api.list_kind("faults").get("items") or []
        names = [
            f["metadata"]["name"]
            for f in items
            if (f.get("status") or {}).get("phase", "Pending") in ("Pending", "Active")
        ]
    for name in names:
        fault = api.get("faults", name)
        phase = (fault.get("status") or {}).get("phase", "Pending")
        if phase in ("Cleared", "Failed"):
            print(f"fault/{name} is already {phase}")
            continue
        api.patch("faults", name, {"spec": {"cleared": True}})
        fault = _settle(api, name, phase, _SETTLE_SECONDS)
        print(f"fault/{name} {(fault.get('status') or {}).get('phase', phase)}")
    return 0


def cmd_slot(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    if args.slot_command == "approve":
        return _approve(config, args.slot)
    return asyncio.run(_slot(config, args))


def _approve(config: rack_config.RackConfig, slot: int) -> int:
    """Approve the board in ``slot`` for enrolment: an annotation the controller uses once."""
    with ApiClient(config) as api:
        units = api.list_kind("computeunits").get("items") or []
        unit = next((u for u in units if u["spec"]["slot"] == slot), None)
        if unit is None:
            raise RackletError(f"no ComputeUnit is declared in slot {slot}")
        name = unit["metadata"]["name"]
        conditions = (unit.get("status") or {}).get("conditions") or []
        waiting = any(c["type"] == "Enrolled" and c["status"] == "False" for c in conditions)
        if not waiting:
            raise RackletError(f"slot {slot} ({name}) is not awaiting enrolment")
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        api.patch("computeunits", name,
                  {"metadata": {"annotations": {ENROLL_APPROVED_ANNOTATION: stamp}}})  # fmt: skip
        print(f"slot {slot}: {name} approved; the controller enrols its board")
    return 0


async def _slot(config: rack_config.RackConfig, args: argparse.Namespace) -> int:
    from racklet.controller._hardware import HardwareControl

    if config.control is None:
        raise RackletError(
            "this rack has no control endpoint in racklet.yaml; restart it with 'racklet up'"
        )
    control = HardwareControl.for_state_dir(config.control.url, config.layout.root)
    try:
        if args.slot_command == "list":
            rows: list[tuple[str, ...]] = [("SLOT", "UNIT", "PRESENT", "PROFILE")]
            for slot in await control.slots():
                present = "yes" if slot["present"] else "no (empty)"
                rows.append((str(slot["slot"]), slot["unit"], present, slot["profile"]))
            print(_format.render_rows(rows))
        elif args.slot_command == "pull":
            slot = await control.pull(args.slot)
            print(f"slot {slot['slot']}: {slot['unit']} pulled")
        else:
            slot = await control.insert(args.slot, profile=args.profile, new_board=args.new_board)
            board = "a new board" if args.new_board else slot["unit"]
            print(f"slot {slot['slot']}: {board} inserted ({slot['profile']})")
            if args.new_board:
                for line in _revoke_old_identity(config.layout.root, str(slot["unit"])):
                    print(line)
    finally:
        await control.aclose()
    return 0


def _revoke_old_identity(state: Path, unit: str) -> list[str]:
    """A new board in a known slot is a new machine: the certificates signed for the old
    board's keys (its unit identity and its BMC's HTTPS certificate, as recorded in
    ``pki/issued/``) are revoked, so the old board is refused wherever it turns up."""
    from racklet.pki import RackCA, revoke

    pki = state / "pki"
    ca = RackCA.load(pki)
    lines = []
    for common_name in (unit, f"{unit}-bmc"):
        record = pki / "issued" / f"{common_name}.pem"
        try:
            pem = record.read_bytes()
        except FileNotFoundError:
            continue
        serial = revoke(ca, pki, pem)
        record.unlink()
        lines.append(f"revoked the old board's {common_name} certificate (serial {serial:x})")
    return lines
