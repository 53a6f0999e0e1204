"""Raspberry Pi 4/5 native network boot: the EEPROM bootloader's ``boot.img``/``boot.sig``.

A Pi whose EEPROM has ``BOOT_ORDER`` mode 7 (HTTP) downloads ``boot.img`` (a FAT image it
mounts as a RAM disk) and ``boot.sig`` (its SHA-256, a timestamp and, for signed boot, an
RSA-2048 PKCS#1 v1.5 signature) from ``HTTP_HOST``/``HTTP_PATH``. This package builds and
checks that pair in rpi-eeprom's exact format:

- :func:`build_boot_pair` (payload directory + key -> files), :func:`verify_boot_pair`;
- :func:`generate_key` for a new RSA-2048 signing key (0600);
- the format kernel: :class:`BootSig`, :func:`parse_sig`, :func:`sign_digest`,
  :func:`verify_sig`;
- ``python -m racklet.boot.rpi`` with ``keygen``, ``build`` and ``verify``.

It does not serve the files; any HTTPS listener can (see docs/rpi-boot.md).
"""

from racklet.boot.rpi._build import (
    IMAGE_NAME,
    SIG_NAME,
    BootPair,
    build_boot_pair,
    verify_boot_pair,
)
from racklet.boot.rpi._fat import build_fat_image
from racklet.boot.rpi._keys import generate_key, load_private_key, load_public_key, public_path
from racklet.boot.rpi._sig import BootSig, parse_sig, sha256_file, sign_digest, verify_sig
from racklet.boot.rpi.errors import (
    DigestError,
    ImageBuildError,
    PayloadDirError,
    RpiBootError,
    SigningKeyError,
)

__all__ = [
    "IMAGE_NAME",
    "SIG_NAME",
    "BootPair",
    "BootSig",
    "DigestError",
    "ImageBuildError",
    "PayloadDirError",
    "RpiBootError",
    "SigningKeyError",
    "build_boot_pair",
    "build_fat_image",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "parse_sig",
    "public_path",
    "sha256_file",
    "sign_digest",
    "verify_boot_pair",
    "verify_sig",
]
