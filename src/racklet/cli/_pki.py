"""``racklet pki status|renew|revoke``: the rack CA's identities, on the management host.

``status`` lists every certificate in the state dir with its subject, usage, expiry and days
left, flagging those expiring within 30 days; ``renew`` re-issues the identities with less
than a third of their lifetime left (or the named ones); ``revoke`` adds a certificate to the
CA's CRL (``pki/crl.pem``). Processes load their certificates and the CRL when they start.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from racklet import config as rack_config
from racklet.cli._format import render_rows
from racklet.pki import PkiError, RackCA, inventory, renew_due, revoke
from racklet.pki._inventory import EXPIRING_DAYS


def add_pki_parser(commands: Any) -> None:
    """``racklet pki ...`` (called from ``racklet.cli.main.build_parser``)."""
    pki = commands.add_parser("pki", help="the rack CA's identities: status, renew, revoke")
    sub = pki.add_subparsers(dest="pki_command", required=True, parser_class=type(pki))
    sub.add_parser("status", help="every identity with subject, usage and expiry")
    renew = sub.add_parser("renew", help="re-issue identities with < 1/3 of their lifetime left")
    renew.add_argument("certs", nargs="*", metavar="CERT", help="renew these now instead")
    rev = sub.add_parser("revoke", help="revoke a certificate (adds it to pki/crl.pem)")
    rev.add_argument("cert", metavar="CERT", help="path of the certificate (.crt)")


def _state(args: argparse.Namespace) -> Path:
    return Path(rack_config.load(args.config).state_dir)


def _relative(path: Path, state: Path) -> str:
    try:
        return str(path.relative_to(state))
    except ValueError:
        return str(path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror or exc}") from exc


def cmd_pki_status(args: argparse.Namespace) -> int:
    state = _state(args)
    now = dt.datetime.now(dt.UTC)
    rows: list[tuple[str, ...]] = [
        ("IDENTITY", "SUBJECT", "USAGE", "NOT AFTER", "DAYS LEFT", "STATE")
    ]
    flagged = 0
    for info in inventory(state):
        status = info.state(now)
        flagged += status != "ok"
        rows.append(
            (
                _relative(info.path, state),
                info.subject.replace(" ", "_"),
                info.usage,
                info.not_after.strftime("%Y-%m-%dT%H:%MZ"),
                f"{info.days_left(now):.1f}",
                status,
            )
        )
    print(render_rows(rows))
    if flagged:
        print(
            f"{flagged} identit{'y needs' if flagged == 1 else 'ies need'} attention "
            f"(expired, revoked, or under {EXPIRING_DAYS} days left)"
        )
    return 0


def cmd_pki_renew(args: argparse.Namespace) -> int:
    state = _state(args)
    ca = RackCA.load(state / "pki")
    if args.certs:
        renewed = []
        for name in args.certs:
            path = Path(name)
            fresh = ca.renew(_read(path))
            fresh.write(path.parent, path.stem)
            renewed.append(path)
    else:
        renewed = renew_due(ca, state)
    for path in renewed:
        print(f"renewed {_relative(path, state)}")
    if not renewed:
        print("nothing to renew: every identity has more than a third of its lifetime left")
    else:
        print("processes pick the new certificates up when they restart")
    return 0


def cmd_pki_revoke(args: argparse.Namespace) -> int:
    state = _state(args)
    ca = RackCA.load(state / "pki")
    path = Path(args.cert)
    serial = revoke(ca, state / "pki", _read(path))
    print(f"revoked {_relative(path, state)} (serial {serial:x}); pki/crl.pem re-signed")
    return 0


def cmd_pki(args: argparse.Namespace) -> int:
    commands = {"status": cmd_pki_status, "renew": cmd_pki_renew, "revoke": cmd_pki_revoke}
    return commands[args.pki_command](args)
