"""A real VM image for the tests: the Debian cloud kernel and busybox-static of this host.

The kernel package is fetched once with ``apt-get download`` into the repository's git-ignored
``.cache/vm`` (CI reaches the Debian archive). Where QEMU, busybox or the kernel cannot be had
the tests skip with the reason, and such a skip fails under CI (``CI`` set): QEMU runs there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from racklet.vm import VmError, build_image, download_kernel_deb

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "vm"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"QEMU tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vm_image() -> bytes:
    """The bytes of a ``busybox`` image (kernel + initramfs), as ``racklet image build`` makes."""
    if shutil.which("qemu-system-x86_64") is None:
        _unavailable("qemu-system-x86_64 is not installed (Debian: qemu-system-x86)")
    if not any(Path(p).is_file() for p in ("/bin/busybox", "/usr/bin/busybox")):
        _unavailable("busybox is not installed (Debian: busybox-static)")
    try:
        deb = download_kernel_deb(CACHE)
        return build_image("busybox", "1.0.0", kernel=deb)
    except VmError as exc:
        _unavailable(str(exc))
        raise
