"""The TUF client conformance interface, over the same fetcher and limits a unit boots with.

::

    python -m racklet.boot.tuf_client --metadata-dir D init ROOT
    python -m racklet.boot.tuf_client --metadata-dir D --metadata-url U refresh
    python -m racklet.boot.tuf_client --metadata-dir D --metadata-url U \\
        --target-name N [--target-name N2 ...] --target-base-url B --target-dir T download

Exit 0 on success, 1 on failure (with one line on stderr), 2 on a usage error. Every
``--target-name`` is resolved and downloaded after one refresh, by one updater; a delegated
role is verified against the delegator of each path being resolved, every time
(:mod:`racklet.boot._tuf_updater`), so a role cached for one target is never trusted under
another delegator that did not sign it.

Metadata is kept unversioned in ``D`` (``root.json``, ``timestamp.json``, ...). Plain
``http://`` URLs are accepted here because the conformance suite serves its repositories on a
local plain-HTTP server; a unit's boot path (``racklet.boot.client``) always uses mutual TLS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from tuf.api import exceptions as tuf_errors

from racklet.boot._tuf_api import Updater
from racklet.boot._tuf_client import translate, updater_config
from racklet.boot._tuf_fetch import HttpxFetcher
from racklet.boot._tuf_updater import StrictUpdater
from racklet.boot._types import BootLimits
from racklet.boot.errors import BootError
from racklet.config import make_dir, write_atomic

__all__ = ["main"]

_LIMITS = BootLimits()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m racklet.boot.tuf_client", description="TUF conformance client"
    )
    parser.add_argument("--metadata-dir", required=True, type=Path)
    parser.add_argument("--metadata-url")
    parser.add_argument("--target-name", action="append", default=[])
    parser.add_argument("--target-base-url")
    parser.add_argument("--target-dir", type=Path)
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="trust ROOT as the initial root metadata")
    init.add_argument("root", type=Path)
    commands.add_parser("refresh", help="update the top-level metadata")
    commands.add_parser("download", help="download and verify each --target-name")
    return parser


def _updater(args: argparse.Namespace, fetcher: HttpxFetcher) -> Updater:
    if not args.metadata_url:
        raise BootError("--metadata-url is required")
    return StrictUpdater(
        str(args.metadata_dir),
        args.metadata_url,
        target_dir=str(args.target_dir) if args.target_dir else None,
        target_base_url=args.target_base_url,
        fetcher=fetcher,
        config=updater_config(_LIMITS),
    )


def _init(metadata_dir: Path, root: Path) -> None:
    write_atomic(metadata_dir / "root.json", root.read_bytes(), mode=0o644)


def _download(updater: Updater, args: argparse.Namespace) -> None:
    if not args.target_name or not args.target_dir or not args.target_base_url:
        raise BootError("download needs --target-name, --target-base-url and --target-dir")
    make_dir(args.target_dir)
    for name in args.target_name:
        info = updater.get_targetinfo(name)
        if info is None:
            raise BootError(f"target {name!r} is not in the repository")
        path = args.target_dir / quote(info.path, "")
        if updater.find_cached_target(info, str(path)) is None:
            updater.download_target(info, str(path))


def run(args: argparse.Namespace) -> None:
    """Carry out one command; raise :class:`BootError` on any failure."""
    if args.command == "init":
        try:
            _init(args.metadata_dir, args.root)
        except OSError as exc:
            raise BootError(f"cannot initialise {args.metadata_dir}: {exc}") from exc
        return
    fetcher = HttpxFetcher(
        ssl_context=None,
        connect_timeout=_LIMITS.connect_timeout,
        read_timeout=_LIMITS.read_timeout,
    )
    try:
        updater = _updater(args, fetcher)
        updater.refresh()
        if args.command == "download":
            _download(updater, args)
    except BootError:
        raise
    except OSError as exc:
        raise BootError(f"cannot use {args.metadata_dir}: {exc}") from exc
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
        raise translate(exc) from exc
    finally:
        fetcher.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args)
    except BootError as exc:
        print(f"tuf_client: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
