"""MicroVM image and hypervisor errors::

VmError              a VM image or a VM could not be used
├── ImageError       bad image bytes (not an archive, parts not matching the manifest)
├── ImageBuildError  an image could not be built (no kernel, no busybox, no apt-get)
└── HypervisorError  QEMU could not be started for a VM
"""

from racklet.errors import RackletError


class VmError(RackletError):
    """A VM image or a VM could not be used."""


class ImageError(VmError):
    """The image's bytes are not a VM image (after TUF verified them, or before publishing)."""


class ImageBuildError(VmError):
    """An image could not be built from the given kernel and busybox."""


class HypervisorError(VmError):
    """QEMU could not be started (not installed, bad arguments)."""
