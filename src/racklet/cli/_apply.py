"""``racklet apply -f``: make the rack match manifests, idempotently, all-or-nothing on validity.

Every document of every file is parsed and validated before the first request, so a typo in
the fifth file leaves the rack untouched. Then each object is created, updated (only what the
manifest declares) or left alone, and reported the way kubectl does:
``computeunit/unit-1 created|configured|unchanged``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from racklet import config as rack_config
from racklet.cli._client import ApiClient, HttpError
from racklet.cli._kinds import by_kind
from racklet.gitops import ManifestDocument, differences, load_manifests, read_paths, updated

_ATTEMPTS = 5


def declared(paths: Sequence[str]) -> list[ManifestDocument]:
    """The validated manifests of files, directories or ``-``; raises before any request."""
    return load_manifests(read_paths(paths))


def apply_one(api: ApiClient, manifest: ManifestDocument, dry_run: bool = False) -> str:
    plural = by_kind(manifest.kind).plural
    for _ in range(_ATTEMPTS):
        live = api.find(plural, manifest.name)
        if live is None:
            if not dry_run:
                api.create(plural, manifest.body)
            return "created"
        if not differences(manifest.body, live):
            return "unchanged"
        if dry_run:
            return "configured"
        try:
            api.replace(plural, manifest.name, updated(manifest.body, live))
        except HttpError as exc:
            if exc.status == 409:  # changed under us: read it again
                continue
            raise
        return "configured"
    raise HttpError(f"{manifest.ref} kept changing while it was applied; try again", 409)


def cmd_apply(args: argparse.Namespace) -> int:
    manifests = declared(args.filename)
    suffix = " (dry run)" if args.dry_run else ""
    with ApiClient(rack_config.load(args.config)) as api:
        for manifest in manifests:
            try:
                outcome = apply_one(api, manifest, args.dry_run)
            except HttpError as exc:
                raise HttpError(f"{manifest.source}: {manifest.ref}: {exc}", exc.status) from exc
            print(f"{manifest.ref} {outcome}{suffix}", flush=True)
    return 0
