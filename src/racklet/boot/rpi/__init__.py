"""Raspberry Pi 4/5 native network boot: the EEPROM bootloader's ``boot.img``/``boot.sig``.

A Pi whose EEPROM has ``BOOT_ORDER`` mode 7 (HTTP) downloads ``boot.img`` (a FAT image it
mounts as a RAM disk) and ``boot.sig`` (its SHA-256, a timestamp and, for signed boot, an
RSA-2048 PKCS#1 v1.5 signature) from ``HTTP_HOST``/``HTTP_PATH``. This package builds and
checks that pair in rpi-eeprom's exact format:

- :func:`build_boot_pair` (payload directory + key -> files), :func:`verify_boot_pair`;
- :func:`generate_key` for a new RSA-2048 signing key (0600);
- the format kernel: :class:`BootSig`, :func:`parse_sig`, :func:`sign_digest`,
  :func:`verify_sig`;
- :class:`PairServer`: serves the pair read-only to Pi bootloaders over server-auth HTTPS
  (plain HTTP only behind an explicit opt-in, for Pi 4s), and :func:`eeprom_config` for the
  bootloader settings that point a Pi at it;
- ``python -m racklet.boot.rpi`` (and ``racklet rpi``) with ``keygen``, ``build``,
  ``verify``, ``serve`` and ``eeprom-config``.
"""

from racklet.boot.rpi._build import (
    IMAGE_NAME,
    SIG_NAME,
    BootPair,
    build_boot_pair,
    verify_boot_pair,
)
from racklet.boot.rpi._eeprom import ca_der, eeprom_config
from racklet.boot.rpi._fat import build_fat_image
from racklet.boot.rpi._keys import generate_key, load_private_key, load_public_key, public_path
from racklet.boot.rpi._serve import DEFAULT_HTTP_PATH, PairServer
from racklet.boot.rpi._serve_cmd import (
    add_eeprom_arguments,
    add_serve_arguments,
    run_eeprom_config,
    run_serve,
)
from racklet.boot.rpi._sig import BootSig, parse_sig, sha256_file, sign_digest, verify_sig
from racklet.boot.rpi._snapshot import PairSnapshot
from racklet.boot.rpi.errors import (
    DigestError,
    ImageBuildError,
    PayloadDirError,
    RpiBootError,
    RpiServeError,
    SigningKeyError,
)

__all__ = [
    "DEFAULT_HTTP_PATH",
    "IMAGE_NAME",
    "SIG_NAME",
    "BootPair",
    "BootSig",
    "DigestError",
    "ImageBuildError",
    "PairServer",
    "PairSnapshot",
    "PayloadDirError",
    "RpiBootError",
    "RpiServeError",
    "SigningKeyError",
    "add_eeprom_arguments",
    "add_serve_arguments",
    "build_boot_pair",
    "build_fat_image",
    "ca_der",
    "eeprom_config",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "parse_sig",
    "public_path",
    "run_eeprom_config",
    "run_serve",
    "sha256_file",
    "sign_digest",
    "verify_boot_pair",
    "verify_sig",
]
