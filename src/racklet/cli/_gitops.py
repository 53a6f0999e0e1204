"""``racklet init gitops DIR`` and ``racklet gitops sync [NAME]``.

``init`` takes the rack it describes from racklet.yaml when a rack has been set up (so the
BMC addresses are the real ones), otherwise the default five-unit rack with placeholder BMC
addresses. ``sync`` asks the controller for an immediate sync the Kubernetes way, by
annotating the GitSource, then waits for the status to show a sync newer than the request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

from racklet import config as rack_config
from racklet.cli._client import ApiClient
from racklet.errors import ConfigError, RackletError
from racklet.gitops import SYNC_ANNOTATION, StarterUnit, starter_files, write_starter

_POLL = 0.2


def _starter_rack(args: argparse.Namespace) -> tuple[str, float, list[StarterUnit], str]:
    try:
        config = rack_config.load(args.config)
    except ConfigError:
        units = [
            StarterUnit(f"unit-{i}", i, f"https://unit-{i}-bmc.rack.local")
            for i in range(1, args.units + 1)
        ]
        return "rack-1", args.psu_watts, units, "the default rack (no racklet.yaml found)"
    units = [StarterUnit(u.name, u.slot, u.bmc.url) for u in config.units]
    return (
        config.rack.name,
        config.rack.psu_rated_watts,
        units,
        f"the rack in {config.layout.config}",
    )


def cmd_init(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    rack, watts, units, origin = _starter_rack(args)
    files = starter_files(directory, rack=rack, psu_watts=watts, units=units)
    commit = write_starter(directory, files)
    print(f"Initialised {directory} from {origin}: commit {commit[:12]}, {len(files)} files")
    for name in sorted(files):
        print(f"  {name}")
    print(f"Next: racklet apply -f {directory / 'gitsource.yaml'}   (then read README.md)")
    return 0


def _stamp(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _ready(source: dict[str, Any]) -> dict[str, Any]:
    for cond in (source.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return {}


def cmd_gitops_sync(args: argparse.Namespace) -> int:
    with ApiClient(rack_config.load(args.config)) as api:
        if args.name:
            names = [args.name]
        else:
            names = sorted(i["metadata"]["name"] for i in api.list_kind("gitsources")["items"])
            if not names:
                raise RackletError("no GitSources (create one: racklet init gitops DIR)")
        failed = []
        for name in names:
            requested = dt.datetime.now(dt.UTC)
            api.patch(
                "gitsources",
                name,
                {"metadata": {"annotations": {SYNC_ANNOTATION: requested.isoformat()}}},
            )
            source = _wait_synced(api, name, requested, args.timeout)
            ready = _ready(source)
            commit = str((source.get("status") or {}).get("lastAppliedCommit") or "-")[:12]
            if ready.get("status") == "True":
                print(f"gitsource/{name} synced: {ready.get('message') or commit}")
            else:
                failed.append(name)
                print(f"gitsource/{name} not ready ({ready.get('reason')}): {ready.get('message')}")
    if failed:
        raise RackletError(
            f"sync failed for {', '.join(failed)} (see 'racklet describe gitsource')"
        )
    return 0


def _wait_synced(
    api: ApiClient, name: str, requested: dt.datetime, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        source = api.get("gitsources", name)
        last = _stamp((source.get("status") or {}).get("lastSyncTime"))
        suspended = (source.get("spec") or {}).get("suspend")
        if suspended:
            raise RackletError(f"gitsource/{name} is suspended (spec.suspend: true); not syncing")
        if last is not None and last >= requested:
            return source
        if time.monotonic() >= deadline:
            raise RackletError(
                f"timed out after {timeout:g} s waiting for gitsource/{name} to sync; "
                "is the controller running GitOps?"
            )
        time.sleep(_POLL)
