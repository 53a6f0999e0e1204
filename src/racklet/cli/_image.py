"""``racklet image build|publish``: MicroVM images, made offline and signed into TUF.

``build`` needs no rack: a kernel (a ``vmlinuz``, a Debian kernel ``.deb``, or by default the
Debian cloud kernel fetched once with ``apt-get download`` into ``--cache``) and busybox-static
become one image archive. ``publish`` signs it into the rack's ``vm-images`` channel as
``vm-images/<name>/<version>/image.tar`` (added to an older repository, root unchanged), the
same TUF publish as ``racklet release publish``; a MicroVM then names it by name and version.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from racklet import config as rack_config
from racklet.boot.errors import BootError
from racklet.cli._release import open_repository
from racklet.errors import RackletError

VM_CHANNEL = "vm-images"
IMAGE_FILE = "image.tar"


class ImageCommandError(RackletError):
    """An image cannot be built or published (the message says why)."""


def cmd_image_build(args: argparse.Namespace) -> int:
    from racklet.vm import build_image, download_kernel_deb  # only the image commands need it

    kernel = Path(args.kernel) if args.kernel else download_kernel_deb(Path(args.cache))
    if not kernel.is_file():
        raise ImageCommandError(f"{kernel}: no such kernel file")
    busybox = Path(args.busybox) if args.busybox else None
    data = build_image(args.name, args.version, kernel=kernel, busybox=busybox)
    rack_config.write_atomic(Path(args.output), data)
    print(f"image {args.name} {args.version} written to {args.output} ({len(data)} bytes)")
    return 0


def cmd_image_publish(args: argparse.Namespace) -> int:
    from racklet.vm import ImageError, read_image

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageCommandError(f"{path}: {exc.strerror or exc}") from exc
    try:
        image = read_image(data)
    except ImageError as exc:
        raise ImageCommandError(f"{path}: {exc}") from exc
    config = rack_config.load(args.config)
    repo = open_repository(config)
    try:
        if VM_CHANNEL not in repo.channels:
            repo.ensure_channel(VM_CHANNEL)
        target = f"{VM_CHANNEL}/{image.name}/{image.version}/{IMAGE_FILE}"
        taken = [r for r in repo.list() if r.channel == VM_CHANNEL]
        if any(f.target_path == target for r in taken for f in r.files):
            raise ImageCommandError(
                f"image {image.name} {image.version} is already published; build a new version"
            )
        repo.publish(VM_CHANNEL, image.name, image.version, {IMAGE_FILE: path}, current=False)
    except BootError as exc:
        raise ImageCommandError(f"cannot publish {image.name} {image.version}: {exc}") from exc
    print(f"image {image.name} {image.version} published as {target} ({len(data)} bytes)")
    return 0


def add_image_parser(commands: Any) -> None:
    image = commands.add_parser("image", help="build and publish MicroVM images (TUF)")
    sub = image.add_subparsers(dest="image_command", required=True, parser_class=type(image))
    build = sub.add_parser("build", help="make an image from a kernel and busybox-static")
    build.add_argument("--name", required=True, help="image name, e.g. busybox")
    build.add_argument("--version", required=True, help="image version, e.g. 1.0.0")
    build.add_argument("--kernel", help="a vmlinuz or a Debian kernel .deb (default: download)")
    build.add_argument("--busybox", help="a static busybox (default: the host's busybox-static)")
    build.add_argument("--cache", default=".cache/vm", help="where a downloaded kernel is kept")
    build.add_argument("-o", "--output", required=True, help="the image file to write")
    publish = sub.add_parser("publish", help="sign an image into the rack's vm-images channel")
    publish.add_argument("file", metavar="FILE")


def cmd_image(args: argparse.Namespace) -> int:
    if args.image_command == "build":
        return cmd_image_build(args)
    return cmd_image_publish(args)
