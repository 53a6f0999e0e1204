"""VM images: the archive round-trips and a part that does not match its manifest is refused."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from racklet.vm import ImageError, build_initramfs, default_busybox, pack_image, read_image


def test_image_round_trips() -> None:
    data = pack_image("busybox", "1.0.0", b"kernel-bytes", b"initrd-bytes")
    image = read_image(data)
    assert (image.name, image.version, image.kernel, image.initrd) == (
        "busybox",
        "1.0.0",
        b"kernel-bytes",
        b"initrd-bytes",
    )


def test_a_swapped_kernel_is_refused() -> None:
    data = bytearray(pack_image("busybox", "1.0.0", b"kernel-bytes", b"initrd-bytes"))
    at = data.index(b"kernel-bytes")
    data[at : at + 6] = b"KERNEL"
    with pytest.raises(ImageError, match="vmlinuz does not match"):
        read_image(bytes(data))


def test_garbage_and_extra_members_are_refused() -> None:
    with pytest.raises(ImageError, match="not an image archive"):
        read_image(b"not a tar at all" * 100)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("../etc/passwd")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ImageError, match="unexpected member"):
        read_image(out.getvalue())


def test_the_initramfs_holds_busybox_and_the_init() -> None:
    raw = gzip.decompress(build_initramfs(default_busybox()))
    assert raw.startswith(b"070701")
    assert b"init\0" in raw and b"bin/busybox\0" in raw
    assert b"racklet-vm: exit " in raw and b"poweroff -f" in raw
