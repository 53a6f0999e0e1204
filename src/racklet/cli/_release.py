"""``racklet release publish|list``: sign a release into the rack's TUF repository.

Runs on the management host (it opens ``<stateDir>/boot`` directly, under the repository's own
lock) and records the release as a ``Release`` resource through the API. Everything is checked
before the first byte is written: the files (regular, non-empty, a unit OS payload that is a
tar archive whose ``agent.json`` names the same version), the channel, the version (new in its
channel), and that the controller answers. The TUF publish itself is atomic (targets first,
the timestamp switch last). Publishing does not move the channel's ``current.json`` unless
``--current`` is given: a ``Rollout`` does that, a canary and a batch at a time.
"""

from __future__ import annotations

import argparse
import re
import tarfile
from pathlib import Path
from typing import Any

from racklet import config as rack_config
from racklet.api import InvalidObject, Release, parse, to_dict
from racklet.boot import (
    MAX_PAYLOAD_BYTES,
    BootError,
    PublishedRelease,
    TufRepository,
    parse_agent_config,
)
from racklet.cli._client import ApiClient
from racklet.cli._format import render_rows
from racklet.cli.errors import UsageError
from racklet.errors import RackletError

PAYLOAD = "payload.bin"
AGENT_CONFIG = "agent.json"
_MAX_AGENT_CONFIG = 64 * 1024
KINDS = ("os", "bmc-firmware", "files")
BMC_FIRMWARE_CHANNEL = "bmc-firmware"


class ReleaseError(RackletError):
    """A release cannot be published or listed (bad files, taken version, no repository)."""


def resource_name(package: str, version: str) -> str:
    """``NAME-V`` as a resource name: dots and plus signs become dashes (DNS label)."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{package}-{version}".lower()).strip("-")
    if not name or len(name) > 63:
        raise UsageError(f"release {package} {version}: the name {name!r} is not a DNS label")
    return name


def check_files(paths: list[Path], kind: str, version: str) -> dict[str, Path]:
    """The files to publish, by target name; one clear error for the first bad one."""
    files: dict[str, Path] = {}
    for path in paths:
        if not path.exists():
            raise ReleaseError(f"{path}: no such file")
        if not path.is_file():
            raise ReleaseError(f"{path}: not a regular file (a directory or a device?)")
        size = path.stat().st_size
        if size == 0:
            raise ReleaseError(f"{path}: the file is empty")
        if size > MAX_PAYLOAD_BYTES:
            raise ReleaseError(f"{path}: {size} bytes is over the limit of {MAX_PAYLOAD_BYTES}")
        if path.name in files:
            raise ReleaseError(f"two files are named {path.name!r}; target names must be unique")
        files[path.name] = path
    if kind == "os":
        payload = files.get(PAYLOAD)
        if payload is None:
            raise ReleaseError(
                f"a unit OS release needs a file named {PAYLOAD} (the payload units boot); "
                "use --kind files for other targets"
            )
        check_payload(payload, version)
    elif kind == "bmc-firmware":
        check_bmc_firmware(files, version)
    return files


def check_bmc_firmware(files: dict[str, Path], version: str) -> None:
    """What a BMC will demand before it writes its standby slot: one image of this version."""
    from racklet.bmc import ImageRejected, parse_manifest  # the BMC service: only this needs it

    if len(files) != 1:
        raise ReleaseError(f"a BMC firmware release is exactly one image, got {len(files)} files")
    (path,) = files.values()
    try:
        manifest = parse_manifest(path.read_bytes())
    except (ImageRejected, OSError) as exc:
        raise ReleaseError(f"{path}: {exc}") from exc
    if manifest.version != version:
        raise ReleaseError(
            f"{path}: the image says version {manifest.version}, not --version {version}"
        )


def check_payload(path: Path, version: str) -> None:
    """What the boot path will demand: a tar archive with an ``agent.json`` of this version."""
    try:
        with tarfile.open(path, "r:") as archive:
            member = next(
                (m for m in archive if m.name.removeprefix("./") == AGENT_CONFIG and m.isfile()),
                None,
            )
            if member is None or member.size > _MAX_AGENT_CONFIG:
                raise ReleaseError(f"{path}: the payload has no {AGENT_CONFIG} (≤ 64 KiB)")
            stream = archive.extractfile(member)
            data = stream.read() if stream is not None else b""
    except (tarfile.TarError, OSError) as exc:
        raise ReleaseError(f"{path}: not a payload tar archive ({exc})") from exc
    try:
        agent = parse_agent_config(data)
    except BootError as exc:
        raise ReleaseError(f"{path}: {exc}") from exc
    if agent.version != version:
        raise ReleaseError(
            f"{path}: its {AGENT_CONFIG} says version {agent.version}, not {version} "
            "(units would report the wrong version)"
        )


def open_repository(config: rack_config.RackConfig) -> TufRepository:
    try:
        return TufRepository.open(config.layout.boot)
    except BootError as exc:
        raise ReleaseError(f"{exc} (is this the management host of the rack?)") from exc


def release_object(tuf: PublishedRelease) -> Release:
    """The ``Release`` resource that records a published TUF release."""
    body = {
        "kind": "Release",
        "metadata": {
            "name": resource_name(tuf.name, tuf.version),
            "labels": {"racklet.dev/channel": tuf.channel, "racklet.dev/package": tuf.name},
        },
        "spec": {
            "package": tuf.name,
            "version": tuf.version,
            "channel": tuf.channel,
            "targets": [
                {"name": f.name, "path": f.target_path, "length": f.length, "sha256": f.sha256}
                for f in tuf.files
            ],
        },
    }
    obj = parse(body)
    assert isinstance(obj, Release)
    return obj


def _validate_version(package: str, version: str, channel: str) -> None:
    """The Release schema's rules (semantic version, DNS-label channel) before any write."""
    body: dict[str, Any] = {
        "kind": "Release",
        "metadata": {"name": resource_name(package, version)},
        "spec": {"package": package, "version": version, "channel": channel},
    }
    try:
        parse(body)
    except InvalidObject as exc:
        raise ReleaseError(f"release {package} {version}: {exc.problems[0]}") from exc


def cmd_release_publish(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    package, version, channel = args.name, args.version, args.channel
    _validate_version(package, version, channel)
    repo = open_repository(config)
    if channel not in repo.channels and channel != BMC_FIRMWARE_CHANNEL:
        raise ReleaseError(f"unknown channel {channel!r} (have: {', '.join(repo.channels)})")
    kind = args.kind or ("bmc-firmware" if channel == BMC_FIRMWARE_CHANNEL else "os")
    files = check_files([Path(f) for f in args.files], kind, version)
    if channel not in repo.channels:  # a rack from before that channel: add it, root unchanged
        repo.ensure_channel(channel)
    if args.current and PAYLOAD not in files:
        raise ReleaseError(f"--current needs a {PAYLOAD}: units of {channel} must boot it")
    existing = _find(repo, channel, package, version)
    with ApiClient(config) as api:
        name = resource_name(package, version)
        recorded = api.find("releases", name)  # also proves the controller answers
        if existing is None and recorded is not None:
            raise ReleaseError(f"a Release resource named {name} already exists")
        if existing is not None:
            if recorded is not None or not _same(existing, files):
                raise ReleaseError(
                    f"release {package} {version} already exists in channel {channel}; "
                    "publish a new version"
                )
            published = existing  # an earlier publish whose resource was never recorded
        else:
            try:
                published = repo.publish(channel, package, version, files, current=args.current)
            except BootError as exc:
                raise ReleaseError(f"cannot publish {package} {version}: {exc}") from exc
        obj = release_object(published)
        api.create("releases", to_dict(obj))
    total = sum(f.length for f in published.files)
    where = "and made current" if args.current else "(channel unchanged; roll it out)"
    print(
        f"release/{name} published: {package} {version} in channel {channel}, "
        f"{len(published.files)} file(s), {total} bytes {where}"
    )
    return 0


def _find(repo: TufRepository, channel: str, package: str, version: str) -> PublishedRelease | None:
    try:
        releases = repo.list()
    except BootError as exc:
        raise ReleaseError(f"cannot read the TUF repository: {exc}") from exc
    return next(
        (r for r in releases if (r.channel, r.name, r.version) == (channel, package, version)),
        None,
    )


def _same(release: PublishedRelease, files: dict[str, Path]) -> bool:
    """Whether an already published release holds exactly these files (same size and name)."""
    have = {f.name: f.length for f in release.files}
    return have == {n: p.stat().st_size for n, p in files.items()}


def cmd_release_list(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    repo = open_repository(config)
    try:
        releases = repo.list()
    except BootError as exc:
        raise ReleaseError(f"cannot read the TUF repository: {exc}") from exc
    with ApiClient(config) as api:
        items = api.list_kind("releases")["items"]
    recorded = {i["metadata"]["name"]: i for i in items}
    rows: list[tuple[str, ...]] = [
        ("NAME", "PACKAGE", "VERSION", "CHANNEL", "CURRENT", "FILES", "BYTES", "STATUS")
    ]
    for r in sorted(releases, key=lambda r: (r.channel, r.name, r.version)):
        name = resource_name(r.name, r.version)
        obj = recorded.get(name)
        status = ((obj or {}).get("status") or {}).get("phase", "Pending") if obj else "-"
        rows.append(
            (
                name if obj else f"({name})",
                r.name,
                r.version,
                r.channel,
                "*" if r.current else "-",
                str(len(r.files)),
                str(sum(f.length for f in r.files)),
                status,
            )
        )
    print(render_rows(rows))
    return 0


def add_release_parser(commands: Any) -> None:
    """``racklet release ...`` (called from ``racklet.cli.main.build_parser``)."""
    release = commands.add_parser("release", help="publish and list signed releases (TUF)")
    sub = release.add_subparsers(dest="release_command", required=True, parser_class=type(release))
    publish = sub.add_parser("publish", help="sign files into the rack's TUF repository")
    publish.add_argument("--name", required=True, help="package name, e.g. racklet-os")
    publish.add_argument("--version", required=True, help="semantic version, e.g. 0.2.0")
    publish.add_argument("--channel", default="stable", help="release channel (default stable)")
    publish.add_argument(
        "--kind",
        choices=KINDS,
        default=None,
        help="os: a unit OS (needs payload.bin); bmc-firmware: one BMC image; files: anything "
        "(default: bmc-firmware on the bmc-firmware channel, else os)",
    )
    publish.add_argument(
        "--current", action="store_true", help="also point the channel at it (skip a rollout)"
    )
    publish.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("list", help="every release in the repository, with its resource")


def cmd_release(args: argparse.Namespace) -> int:
    if args.release_command == "publish":
        return cmd_release_publish(args)
    return cmd_release_list(args)
