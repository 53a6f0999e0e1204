"""Build the FAT16 ``boot.img`` a Pi's bootloader mounts as a RAM disk, with mtools.

mtools (Debian ``mtools``) writes FAT images without root or loop devices. The image is sized
to the payload: a FAT16 volume with just enough clusters (at least FAT16's minimum of 4,085,
so the bootloader never sees FAT12) because the Pi downloads every byte of it. Long file names
(``bcm2712-rpi-5-b.dtb``) and sub-directories (``overlays/``) are kept. This module does not
sign; :mod:`._build` does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from racklet.boot.rpi.errors import ImageBuildError, PayloadDirError

SECTOR = 512
_FAT16_MIN_CLUSTERS = 4_200  # FAT16 needs >= 4,085; a little above so rounding never tips it
_FAT16_MAX_CLUSTERS = 65_000  # FAT16 allows < 65,525
_ROOT_SECTORS = 32  # 512 root entries of 32 bytes
_MTOOLS_TIMEOUT = 300.0


@dataclass(frozen=True)
class PayloadEntry:
    """One file or directory of the payload, by its path inside the image."""

    relative: Path
    size: int
    is_dir: bool


def scan_payload(payload: Path) -> list[PayloadEntry]:
    """List the payload, refusing what a FAT boot image cannot hold or should not."""
    if not payload.is_dir():
        raise PayloadDirError(f"payload {payload} is not a directory")
    entries: list[PayloadEntry] = []
    for root, dirs, files in os.walk(payload):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            path = Path(root, name)
            relative = path.relative_to(payload)
            if path.is_symlink():
                raise PayloadDirError(f"payload entry {relative} is a symlink; copy the file")
            if path.is_dir():
                entries.append(PayloadEntry(relative, 0, True))
            elif path.is_file():
                entries.append(PayloadEntry(relative, path.stat().st_size, False))
            else:
                raise PayloadDirError(f"payload entry {relative} is not a regular file")
    if not any(not e.is_dir for e in entries):
        raise PayloadDirError(f"payload {payload} holds no files")
    if not (payload / "config.txt").is_file():
        raise PayloadDirError(f"payload {payload} has no config.txt; the Pi firmware needs one")
    return entries


def plan_geometry(entries: list[PayloadEntry]) -> tuple[int, int]:
    """``(total sectors, sectors per cluster)`` of the smallest FAT16 volume that fits."""
    for per_cluster in (1, 2, 4, 8, 16, 32, 64):
        cluster = per_cluster * SECTOR
        needed = sum(-(-e.size // cluster) if not e.is_dir else 1 for e in entries)
        clusters = max(needed + needed // 64 + 16, _FAT16_MIN_CLUSTERS)
        if clusters <= _FAT16_MAX_CLUSTERS:
            fat_sectors = -(-(clusters + 2) * 2 // SECTOR)
            total = 1 + 2 * fat_sectors + _ROOT_SECTORS + clusters * per_cluster
            return total, per_cluster
    raise PayloadDirError("payload too large for a FAT16 boot.img (over about 2 GB)")


def _run(args: list[str]) -> None:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    try:
        done = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=_MTOOLS_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(f"{args[0]} failed: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ImageBuildError(f"{args[0]} failed: {detail[-1] if detail else done.returncode}")


def build_fat_image(payload: Path, image: Path, *, label: str = "RACKLET") -> int:
    """Write ``payload``'s tree into a new FAT16 image at ``image``; return its size in bytes.

    The volume serial is derived from the payload's names and sizes so that rebuilding the
    same payload gives the same volume identity.
    """
    for tool in ("mformat", "mmd", "mcopy"):
        if shutil.which(tool) is None:
            raise ImageBuildError(f"{tool} not found; install the Debian package 'mtools'")
    entries = scan_payload(payload)
    total, per_cluster = plan_geometry(entries)
    fingerprint = hashlib.sha256(
        "".join(f"{e.relative}:{e.size};" for e in entries).encode()
    ).hexdigest()
    image.unlink(missing_ok=True)
    img = str(image)
    geometry = ["-C", "-T", str(total), "-c", str(per_cluster), "-r", str(_ROOT_SECTORS)]
    _run(["mformat", "-i", img, *geometry, "-N", fingerprint[:8], "-v", label[:11].upper(), "::"])
    for entry in entries:
        target = f"::/{entry.relative.as_posix()}"
        if entry.is_dir:
            _run(["mmd", "-i", img, target])
        else:
            _run(["mcopy", "-i", img, "-p", "-m", str(payload / entry.relative), target])
    _check_fat16(image)
    return image.stat().st_size


def _check_fat16(image: Path) -> None:
    with image.open("rb") as handle:
        boot = handle.read(SECTOR)
    if boot[54:62] != b"FAT16   " or boot[510:512] != b"\x55\xaa":
        raise ImageBuildError(f"mformat did not produce a FAT16 volume in {image}")
