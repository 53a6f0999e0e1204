"""The ``serve`` and ``eeprom-config`` commands, shared by ``python -m racklet.boot.rpi`` and
``racklet rpi``: argument definitions and the code that runs them until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from racklet.boot.rpi._eeprom import eeprom_config
from racklet.boot.rpi._serve import DEFAULT_HTTP_PATH, PairServer, parse_listen
from racklet.boot.rpi.errors import RpiBootError, RpiServeError
from racklet.log import configure
from racklet.net import run_loop, server_context

DEFAULT_LISTEN = "0.0.0.0:8443"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, help="directory with the pair")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help=f"ADDR:PORT ({DEFAULT_LISTEN})")
    parser.add_argument("--cert", type=Path, help="TLS server certificate from the rack CA")
    parser.add_argument("--key", type=Path, help="its private key")
    parser.add_argument("--pubkey", type=Path, help="RSA public key: serve only if it verifies")
    parser.add_argument(
        "--http-path", default=DEFAULT_HTTP_PATH, help=f"the Pi's HTTP_PATH ({DEFAULT_HTTP_PATH})"
    )
    parser.add_argument(
        "--insecure-plain-http",
        action="store_true",
        help="serve over PLAIN HTTP (Pi 4 only; needs --pubkey; see docs/rpi-boot.md)",
    )


def add_eeprom_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", required=True, help="HTTP_HOST: the server's DNS name")
    parser.add_argument("--port", type=int, default=8443, help="HTTP_PORT (8443)")
    parser.add_argument("--http-path", default=DEFAULT_HTTP_PATH, help="HTTP_PATH")
    parser.add_argument("--ca", type=Path, help="rack CA certificate: HTTPS (Pi 5); omit: HTTP")


def make_server(args: argparse.Namespace) -> PairServer:
    """Check the combination of options and build the (not yet started) server."""
    host, port = parse_listen(args.listen)
    if args.insecure_plain_http:
        if args.cert or args.key:
            raise RpiServeError("--insecure-plain-http serves without TLS; drop --cert/--key")
        context = None
    else:
        if not (args.cert and args.key):
            raise RpiServeError("give --cert and --key (a rack-CA server identity) to serve HTTPS")
        try:
            context = server_context(args.cert, args.key)  # server auth only: no client certs
        except (OSError, ValueError) as exc:
            raise RpiServeError(f"cannot load {args.cert} / {args.key}: {exc}") from exc
    return PairServer(
        args.dir,
        host=host,
        port=port,
        ssl_context=context,
        http_path=args.http_path,
        public_key=args.pubkey,
        allow_plain_http=args.insecure_plain_http,
    )


async def _serve(server: PairServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        snap = server.snapshot
        assert snap is not None
        print(
            f"serving {server.url}{{boot.img,boot.sig}} (boot.img {snap.image.size} bytes, "
            f"sha256 {snap.sig.sha256.hex()[:16]}…, "
            f"{'signature verified' if snap.signed else 'signature not checked: no --pubkey'})",
            flush=True,
        )
        await stop.wait()
    finally:
        await server.stop()


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; errors are one line and exit status 1."""
    configure("INFO")
    try:
        run_loop(_serve(make_server(args)))
    except RpiBootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_eeprom_config(args: argparse.Namespace) -> int:
    try:
        text = eeprom_config(args.host, args.port, args.http_path, ca_cert=args.ca)
    except RpiBootError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text, end="")
    return 0
