"""Raspberry Pi boot-pair errors, named by who is to blame::

    RpiBootError                anything while building or checking boot.img / boot.sig
    ├── PayloadDirError         caller misuse: the payload directory is missing, empty or odd
    ├── SigningKeyError         caller misuse: the key is unreadable or not RSA-2048
    ├── ImageBuildError         the FAT image could not be made (mtools missing or failing)
    ├── DigestError             a boot.sig is malformed or does not match its boot.img
    └── RpiServeError           caller misuse of the listener (plain HTTP without opt-in, ...)

Messages are one line, fit for the CLI's ``error: ...``.
"""

from racklet.errors import RackletError


class RpiBootError(RackletError):
    """Building or checking a Raspberry Pi boot.img/boot.sig pair failed."""


class PayloadDirError(RpiBootError):
    """The payload directory cannot become a boot.img (missing, empty, special files)."""


class SigningKeyError(RpiBootError):
    """The signing key is unreadable, encrypted, or not an RSA-2048 key."""


class ImageBuildError(RpiBootError):
    """mtools could not create or fill the FAT image."""


class DigestError(RpiBootError):
    """A boot.sig is malformed, or its hash or signature does not match the image."""


class RpiServeError(RpiBootError):
    """The pair cannot be served: refused mode (plain HTTP without opt-in), bad address."""
