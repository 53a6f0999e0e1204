"""``racklet audit [--since] [--principal] [--component]``: who changed what, from the files.

Reads every audit log of the rack's state dir (the controllers', each BMC's, the RMC's; see
:mod:`racklet.audit`), merged oldest first. It reads files, so it works with the rack stopped
and needs no token (the files are 0600: whoever may read them owns the rack).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from racklet import config as rack_config
from racklet.audit import AuditFilter, AuditFormatError, audit_files, parse_since, read_records
from racklet.cli._format import as_json, render_rows
from racklet.cli.errors import UsageError
from racklet.errors import RackletError


def since(text: str) -> dt.datetime:
    """``--since 1h`` (that long ago) or an ISO time (``2026-12-07T09:00``, UTC if no zone)."""
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--{exc}") from None


def add_audit_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="who changed what: the audit logs of the rack")
    audit.add_argument("--since", type=since, help="only newer lines: 30m, 2h, 1d or a time")
    audit.add_argument("--principal", help="only this principal (token name, BMC account)")
    audit.add_argument("--component", help="only api, rmc, bmc or bmc/unit-1")
    audit.add_argument("-o", "--output", choices=("table", "json"), default="table")


def _row(record: dict[str, Any]) -> tuple[str, ...]:
    if "dropped" in record:
        return (
            str(record["time"]),
            "audit",
            "-",
            "-",
            "-",
            f"{record['dropped']} lines lost",
            "",
            "",
        )
    return (
        str(record.get("time", "")),
        str(record.get("component", "")),
        str(record.get("principal") or "-"),
        str(record.get("source") or "-"),
        str(record.get("verb", "")),
        str(record.get("object", "")),
        f"{record.get('outcome', '')} {record.get('status', '')}".strip(),
        str(record.get("requestId", "")),
    )


def cmd_audit(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    state = Path(config.state_dir)
    if args.component is not None and not args.component.strip():
        raise UsageError("--component takes api, rmc, bmc or bmc/<unit>")
    where = AuditFilter(since=args.since, principal=args.principal, component=args.component)
    try:
        records = read_records(audit_files(state), where)
    except (AuditFormatError, OSError) as exc:
        raise RackletError(f"cannot read the audit log: {exc}") from None
    if args.output == "json":
        print(as_json(records))
        return 0
    if not records:
        print("no audit records match")
        return 0
    header = ("TIME", "COMPONENT", "PRINCIPAL", "SOURCE", "VERB", "OBJECT", "OUTCOME", "REQUEST")
    print(render_rows([header, *(_row(r) for r in records)]))
    return 0
