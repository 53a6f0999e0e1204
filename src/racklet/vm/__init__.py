"""MicroVM images and their hypervisor command line (the ``vm/`` of the blueprint).

Images are built offline (``build_image``), published as TUF targets of the ``vm-images``
channel and read back on a unit after TUF verified them (``read_image``). The unit's agent
(:mod:`racklet.node`) runs them with the command line of ``qemu_command``. No I/O at import,
no network: downloading a kernel package is an explicit build step.
"""

from racklet.vm._image import (
    EXIT_MARKER,
    VmImage,
    build_image,
    build_initramfs,
    default_busybox,
    download_kernel_deb,
    kernel_from_deb,
    pack_image,
    read_image,
    user_data_archive,
)
from racklet.vm._qemu import (
    accelerator,
    die_with_parent,
    disable_kvm,
    find_qemu,
    qemu_command,
)
from racklet.vm.errors import HypervisorError, ImageBuildError, ImageError, VmError

__all__ = [
    "EXIT_MARKER",
    "HypervisorError",
    "ImageBuildError",
    "ImageError",
    "VmError",
    "VmImage",
    "accelerator",
    "build_image",
    "build_initramfs",
    "default_busybox",
    "die_with_parent",
    "disable_kvm",
    "download_kernel_deb",
    "find_qemu",
    "kernel_from_deb",
    "pack_image",
    "qemu_command",
    "read_image",
    "user_data_archive",
]
