"""``racklet pki status|renew|revoke``: the rack CA's identities, on the management host.

``status`` lists every certificate in the state dir with its subject, usage, expiry and days
left, flagging those expiring within 30 days, then each unit's identity and BMC HTTPS
certificate as its BMC reports them (their keys live in the BMCs; the controller renews them
through Redfish CertificateService, so they are short-lived); ``renew`` re-issues the
identities with less than a third of their lifetime left (or the named ones); ``revoke`` adds a
certificate to the CA's CRL (``pki/crl.pem``). Processes load their certificates and the CRL
when they start.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from racklet import config as rack_config
from racklet.cli._client import bmc_identity, rack_identity
from racklet.cli._format import render_rows
from racklet.pki import (
    CRL_NAME,
    PkiError,
    RackCA,
    crl_next_update,
    crl_serials,
    inventory,
    renew_due,
    revoke,
)
from racklet.pki._inventory import BMC_HELD, EXPIRING_DAYS, HELD_STEMS
from racklet.redfish import RedfishClient, RedfishClientError

_BMC_CERTIFICATES = (
    ("identity", "/redfish/v1/Systems/{unit}/Certificates/1"),
    ("https", "/redfish/v1/Managers/bmc/NetworkProtocol/HTTPS/Certificates/1"),
)
_RMC_CERTIFICATES = (("https", "/redfish/v1/Managers/rmc/NetworkProtocol/HTTPS/Certificates/1"),)


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
    config = rack_config.load(args.config)
    state = Path(config.state_dir)
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
    revoked: set[int] = set()
    if (state / "pki" / CRL_NAME).exists():
        revoked = crl_serials(state / "pki")  # what the listeners enforce
        next_update = crl_next_update(state / "pki")
        shown = next_update.strftime("%Y-%m-%dT%H:%MZ") if next_update else "-"
        print(f"CRL pki/{CRL_NAME}: {len(revoked)} revoked, next update {shown}", end="")
        expired = next_update is None or next_update <= now
        print(" EXPIRED: listeners refuse every client certificate" if expired else "")
    else:
        print(f"CRL pki/{CRL_NAME}: missing (the controller writes it when it starts)")
    held = asyncio.run(_bmc_rows(config, now, revoked))
    print(
        "Held by the BMCs and the RMC (as they report them; "
        "the controller renews them through Redfish):"
    )
    header = ("UNIT", "CERTIFICATE", "SUBJECT", "NOT AFTER", "DAYS LEFT", "STATE")
    print(render_rows([header, *held]))
    bmc_flagged = sum(row[-1] != "ok" for row in held)
    if bmc_flagged:
        print(
            f"{bmc_flagged} BMC-held row(s) need attention "
            "(missing, unreachable, due, expired, revoked)"
        )
    if flagged:
        print(
            f"{flagged} identit{'y needs' if flagged == 1 else 'ies need'} attention "
            f"(expired, revoked, or under {EXPIRING_DAYS} days left)"
        )
    return 0


def _bmc_state(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> str:
    if now >= not_after:
        return "EXPIRED"
    return "DUE" if (not_after - now) < (not_after - not_before) / 3 else "ok"


def _serial(body: dict[str, Any]) -> int | None:
    """Redfish ``SerialNumber`` (``36:26:87:...``) as an integer, to look up in the CRL."""
    try:
        return int(str(body["SerialNumber"]).replace(":", ""), 16)
    except (KeyError, ValueError):
        return None


async def _held(
    name: str,
    client: RedfishClient,
    certificates: tuple[tuple[str, str], ...],
    now: dt.datetime,
    revoked: set[int],
) -> list[tuple[str, ...]]:
    """The rows of one BMC (or the RMC, ``name`` rmc): what it reports, or why it could not
    be asked."""
    rows: list[tuple[str, ...]] = []
    try:
        for label, uri in certificates:
            body = await client.certificate(uri.format(unit=name))
            if body is None:
                rows.append((name, label, "-", "-", "-", "MISSING"))
                continue
            before = dt.datetime.fromisoformat(str(body["ValidNotBefore"]))
            after = dt.datetime.fromisoformat(str(body["ValidNotAfter"]))
            subject = str((body.get("Subject") or {}).get("CommonName", "-"))
            days = (after - now) / dt.timedelta(days=1)
            state = "REVOKED" if _serial(body) in revoked else _bmc_state(before, after, now)
            stamp = after.strftime("%Y-%m-%dT%H:%MZ")
            rows.append((name, label, subject, stamp, f"{days:.1f}", state))
    except (RedfishClientError, KeyError, ValueError, TypeError):
        rows.append((name, "-", "-", "-", "-", "UNREACHABLE"))
    finally:
        await client.aclose()
    return rows


async def _bmc_rows(
    config: rack_config.RackConfig, now: dt.datetime, revoked: set[int]
) -> list[tuple[str, ...]]:
    """Every BMC's rows, then the RMC's (when the rack has one)."""
    ca = config.layout.ca_cert
    work = [
        _held(
            unit.name,
            RedfishClient(
                unit.bmc.url,
                unit.bmc.username,
                unit.bmc.password,
                ca_bundle=ca,
                expect=bmc_identity(config, unit.name),
                timeout=3.0,
            ),
            _BMC_CERTIFICATES,
            now,
            revoked,
        )
        for unit in config.units
    ]
    if config.rmc is not None:
        rmc = config.rmc
        client = RedfishClient(
            rmc.url,
            rmc.username,
            rmc.password,
            ca_bundle=ca,
            expect=rack_identity(config, "rmc"),
            timeout=3.0,
        )
        work.append(_held("rmc", client, _RMC_CERTIFICATES, now, revoked))
    found = await asyncio.gather(*work)
    return [row for rows in found for row in rows]


def cmd_pki_renew(args: argparse.Namespace) -> int:
    state = _state(args)
    ca = RackCA.load(state / "pki")
    if args.certs:
        renewed = []
        for name in args.certs:
            path = Path(name)
            if (path.parent / BMC_HELD).is_dir() and path.stem in HELD_STEMS:
                raise PkiError(
                    f"{path} is held by its service: the controller renews it through Redfish "
                    "CertificateService (see docs/pki.md)"
                )
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
        print("running listeners and clients present them from their next connection")
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
