"""``python -m racklet.boot.rpi``: make a signing key, build a boot pair, verify one, serve
it to Pis (``serve``), and print the EEPROM settings that point a Pi at it (``eeprom-config``).

Errors are one line on stderr with exit status 1; argument mistakes exit 2 (argparse).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from racklet.boot.rpi._build import build_boot_pair, verify_boot_pair
from racklet.boot.rpi._keys import generate_key, public_path
from racklet.boot.rpi._serve_cmd import (
    add_eeprom_arguments,
    add_serve_arguments,
    run_eeprom_config,
    run_serve,
)
from racklet.boot.rpi.errors import RpiBootError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m racklet.boot.rpi",
        description="Raspberry Pi 4/5 HTTP boot: build and check boot.img + boot.sig.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="create an RSA-2048 signing key (0600) + .pub.pem")
    keygen.add_argument("--out", type=Path, required=True, help="private key file to create")
    build = sub.add_parser("build", help="build boot.img from a directory and sign it")
    build.add_argument("--payload", type=Path, required=True, help="files for the FAT image")
    build.add_argument("--key", type=Path, required=True, help="RSA-2048 private key (PEM)")
    build.add_argument("--out", type=Path, required=True, help="directory for boot.img/.sig")
    build.add_argument("--timestamp", type=int, help="ts: value (default: now)")
    verify = sub.add_parser("verify", help="check boot.img against boot.sig and a public key")
    verify.add_argument("--dir", type=Path, required=True, help="directory with the pair")
    verify.add_argument("--pubkey", type=Path, required=True, help="RSA-2048 public key (PEM)")
    serve = sub.add_parser("serve", help="serve the pair to Pi bootloaders (HTTPS, read-only)")
    add_serve_arguments(serve)
    eeprom = sub.add_parser("eeprom-config", help="print the boot.conf lines for this server")
    add_eeprom_arguments(eeprom)
    return parser


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "eeprom-config":
        return run_eeprom_config(args)
    try:
        if args.command == "keygen":
            generate_key(args.out)
            print(f"wrote {args.out} (0600) and {public_path(args.out)}")
        elif args.command == "build":
            pair = build_boot_pair(args.payload, args.key, args.out, timestamp=args.timestamp)
            print(f"wrote {pair.image} ({pair.size} bytes, FAT16)")
            print(f"wrote {pair.sig_path} (sha256 {pair.sig.sha256.hex()[:16]}…, rsa2048)")
        else:
            sig = verify_boot_pair(args.dir / "boot.img", args.dir / "boot.sig", args.pubkey)
            print(f"boot.img verified: sha256 {sig.sha256.hex()}, signed {_when(sig.timestamp)}")
    except RpiBootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
