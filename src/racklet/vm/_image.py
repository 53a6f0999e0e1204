"""VM images: a kernel and an initramfs in one tar archive, the unit of a TUF target.

``build_image`` makes one offline: the kernel from a Debian package (``apt-get download`` of
``linux-image-cloud-amd64``'s kernel, unpacked with ``dpkg-deb -x``) or a file, and a
busybox-static initramfs whose init runs the user data and prints its exit code on the
console before powering the VM off. ``read_image`` parses one; it trusts nothing it is given
(sizes bounded, members named exactly), but it does not decide whether the bytes are
trusted: that is TUF's job, done before it is called.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from racklet.vm import _cpio
from racklet.vm.errors import ImageBuildError, ImageError

MANIFEST = "image.json"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
MAX_IMAGE_BYTES = 256 * 1024 * 1024
EXIT_MARKER = "racklet-vm: exit "
"""The init's last console line before it powers off: the user command's exit code."""
USER_DATA_PATH = "racklet/user-data"

INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "racklet-vm: init started"
code=0
if [ -f /{USER_DATA_PATH} ]; then
  sh /{USER_DATA_PATH}
  code=$?
fi
echo "{EXIT_MARKER}$code"
poweroff -f
"""


@dataclass(frozen=True)
class VmImage:
    """An image's parts, read from its archive."""

    name: str
    version: str
    kernel: bytes
    initrd: bytes


def default_busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file():
            return path
    raise ImageBuildError("busybox not found: install Debian's busybox-static")


def build_initramfs(busybox: Path) -> bytes:
    """A gzip'd cpio with a static busybox and the init above."""
    data = busybox.read_bytes()
    entries = [_cpio.directory(d) for d in ("bin", "sbin", "proc", "sys", "dev", "racklet")]
    entries += [
        _cpio.file("bin/busybox", data, 0o755),
        _cpio.symlink("bin/sh", "busybox"),
        _cpio.file("init", INIT_SCRIPT.encode(), 0o755),
    ]
    return _cpio.archive(entries)


def user_data_archive(user_data: str) -> bytes:
    """The cpio appended to the image's initrd at launch: the VM's own user data."""
    entries = [_cpio.directory("racklet"), _cpio.file(USER_DATA_PATH, user_data.encode(), 0o600)]
    return _cpio.archive(entries)


def kernel_from_deb(deb: Path) -> bytes:
    """The ``boot/vmlinuz-*`` of a Debian kernel package."""
    with tempfile.TemporaryDirectory(prefix="racklet-kernel-") as tmp:
        try:
            subprocess.run(
                ["dpkg-deb", "-x", str(deb), tmp], check=True, capture_output=True, timeout=300
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ImageBuildError(f"cannot unpack {deb}: {exc}") from exc
        kernels = sorted(Path(tmp, "boot").glob("vmlinuz-*"))
        if not kernels:
            raise ImageBuildError(f"{deb} holds no boot/vmlinuz-*")
        return kernels[0].read_bytes()


def download_kernel_deb(cache: Path, package: str = "linux-image-cloud-amd64") -> Path:
    """The kernel package ``package`` depends on, fetched with ``apt-get download`` into
    ``cache`` once (a build step, never done by a unit)."""
    found = sorted(cache.glob("linux-image-*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise ImageBuildError("apt-get not found: pass --kernel PATH")
    try:
        depends = subprocess.run(
            ["apt-cache", "depends", package],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        real = next(
            line.split(":", 1)[1].strip()
            for line in depends.splitlines()
            if line.strip().startswith("Depends: linux-image-")
        )
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["apt-get", "download", real],
            cwd=cache,
            check=True,
            capture_output=True,
            timeout=600,
        )
    except StopIteration as exc:
        raise ImageBuildError(f"{package} names no kernel package") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageBuildError(f"cannot download {package}: {exc}") from exc
    found = sorted(cache.glob("linux-image-*.deb"))
    if not found:
        raise ImageBuildError(f"apt-get download {package} left no .deb in {cache}")
    return found[-1]


def pack_image(name: str, version: str, kernel: bytes, initrd: bytes) -> bytes:
    """The image archive: manifest first (with each part's digest), then kernel and initrd."""
    manifest = {
        "name": name,
        "version": version,
        "kernelSha256": hashlib.sha256(kernel).hexdigest(),
        "initrdSha256": hashlib.sha256(initrd).hexdigest(),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in (
            (MANIFEST, json.dumps(manifest, indent=2).encode()),
            (KERNEL, kernel),
            (INITRD, initrd),
        ):
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_image(name: str, version: str, *, kernel: Path, busybox: Path | None = None) -> bytes:
    """An image from a kernel (a ``vmlinuz`` or a Debian kernel ``.deb``) and busybox."""
    kernel_bytes = kernel_from_deb(kernel) if kernel.suffix == ".deb" else kernel.read_bytes()
    initrd = build_initramfs(busybox or default_busybox())
    return pack_image(name, version, kernel_bytes, initrd)


def read_image(data: bytes) -> VmImage:
    """Parse an image archive; :class:`ImageError` names what is wrong with it."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image is {len(data)} bytes, at most {MAX_IMAGE_BYTES}")
    parts: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if member.name not in (MANIFEST, KERNEL, INITRD) or not member.isfile():
                    raise ImageError(f"unexpected member {member.name!r} in the image")
                extracted = tar.extractfile(member)
                assert extracted is not None
                parts[member.name] = extracted.read()
    except tarfile.TarError as exc:
        raise ImageError(f"not an image archive: {exc}") from exc
    missing = {MANIFEST, KERNEL, INITRD} - parts.keys()
    if missing:
        raise ImageError(f"image lacks {', '.join(sorted(missing))}")
    try:
        manifest = json.loads(parts[MANIFEST])
        name, version = str(manifest["name"]), str(manifest["version"])
        digests = (manifest["kernelSha256"], manifest["initrdSha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"bad image manifest: {exc}") from exc
    for part, digest in zip((KERNEL, INITRD), digests, strict=True):
        if hashlib.sha256(parts[part]).hexdigest() != digest:
            raise ImageError(f"the image's {part} does not match its manifest digest")
    return VmImage(name, version, parts[KERNEL], parts[INITRD])
