"""``racklet token create|list|revoke``: API tokens with roles (admin only, and audited).

``create`` prints the token once (only its hash is kept); hand it to a student, who sets
``RACKLET_TOKEN`` to use it with every command. See docs/audit-and-tokens.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from racklet import config as rack_config
from racklet.api import TOKEN_ROLES
from racklet.cli._client import ApiClient
from racklet.cli._format import as_json, render_rows
from racklet.cli._resources import duration
from racklet.cli.errors import UsageError

MAX_TTL = 366 * 24 * 3600


def _ttl(text: str) -> float:
    """``8h``, ``90m``, ``2d``: how long the token works."""
    if text.strip().endswith("d") and text.strip()[:-1].isdigit():
        seconds = int(text.strip()[:-1]) * 86400.0
    else:
        try:
            seconds = duration(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"--ttl takes a lifetime like 90m, 8h or 2d, got {text!r}"
            ) from None
    if not 0 < seconds <= MAX_TTL:
        raise argparse.ArgumentTypeError(f"--ttl must be more than 0 and at most 366d, got {text}")
    return seconds


def _units(text: str) -> list[str]:
    units = [u.strip() for u in text.split(",")]
    if not all(units):
        raise argparse.ArgumentTypeError(f"--units takes names like unit-1,unit-2, got {text!r}")
    return units


def add_token_parser(commands: Any) -> None:
    """``racklet token ...`` (called from ``racklet.cli.main.build_parser``)."""
    token = commands.add_parser("token", help="API tokens with roles: create, list, revoke")
    sub = token.add_subparsers(dest="token_command", required=True, parser_class=type(token))
    create = sub.add_parser("create", help="make a token and print it (only this once)")
    create.add_argument("--role", required=True, choices=TOKEN_ROLES)
    create.add_argument(
        "--units", type=_units, default=[], help="an operator's units: unit-1,unit-2"
    )
    create.add_argument(
        "--ttl", type=_ttl, default=None, help="lifetime, e.g. 8h, 2d (default 24h)"
    )
    create.add_argument("--name", help="the token's name (the audit log's principal)")
    create.add_argument("--description", default="", help="who it is for, e.g. 'Alice, lab 3'")
    listing = sub.add_parser("list", help="every token: name, role, units, expiry")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    revoke = sub.add_parser("revoke", help="revoke a token (it stops working at once)")
    revoke.add_argument("name")


def _expiry(spec: dict[str, Any], now: dt.datetime) -> tuple[str, str]:
    text = spec.get("expiresAt")
    if not text:
        return "never", "active"
    when = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when.strftime("%Y-%m-%dT%H:%MZ"), "expired" if when <= now else "active"


def cmd_token(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    with ApiClient(config) as api:
        if args.token_command == "create":
            if args.units and args.role != "operator":
                raise UsageError("--units is only for --role operator")
            body: dict[str, Any] = {"role": args.role, "units": args.units}
            if args.ttl is not None:
                body["ttlSeconds"] = args.ttl
            if args.name:
                body["name"] = args.name
            if args.description:
                body["description"] = args.description
            made = api.request("POST", "/api/v1/tokens", json=body)
            expires, _ = _expiry(made["spec"], dt.datetime.now(dt.UTC))
            scope = f" on {','.join(made['spec']['units'])}" if made["spec"].get("units") else ""
            name = made["metadata"]["name"]
            # The note on stderr, the token alone on stdout: TOKEN=$(racklet token create ...)
            print(
                f"token/{name} created: {args.role}{scope}, expires {expires}"
                " (shown only now: keep it secret)",
                file=sys.stderr,
            )
            print(made["token"])
            return 0
        if args.token_command == "list":
            items = api.request("GET", "/api/v1/tokens")["items"]
            if args.output == "json":
                print(as_json(items))
                return 0
            now = dt.datetime.now(dt.UTC)
            rows: list[tuple[str, ...]] = [
                ("NAME", "ROLE", "UNITS", "EXPIRES", "STATE", "DESCRIPTION")
            ]
            for item in items:
                spec = item["spec"]
                expires, state = _expiry(spec, now)
                state = (item.get("status") or {}).get("state", state)
                units = ",".join(spec.get("units") or []) or (
                    "all" if spec["role"] == "operator" else "-"
                )
                rows.append(
                    (
                        item["metadata"]["name"],
                        spec["role"],
                        units,
                        expires,
                        state,
                        spec.get("description", ""),
                    )
                )
            print(
                render_rows(rows)
                if items
                else "no tokens (the admin token in racklet.yaml is not listed)"
            )
            return 0
        api.request("DELETE", f"/api/v1/tokens/{args.name}")
        print(f"token/{args.name} revoked")
        return 0
