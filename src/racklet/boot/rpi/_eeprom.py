"""The bootloader settings (``rpi-eeprom-config`` lines) that point a Pi at a pair server.

Pure text: it reads the CA certificate to hash it and writes nothing. The settings and their
meaning are Raspberry Pi's (see docs/rpi-boot.md for the sources).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from racklet.boot.rpi.errors import RpiServeError

_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")  # what HTTP_HOST accepts


def ca_der(ca_cert: Path) -> bytes:
    """The CA certificate in DER, as ``rpi-eeprom-config --cacertder`` takes it."""
    try:
        data = ca_cert.read_bytes()
    except OSError as exc:
        raise RpiServeError(f"cannot read {ca_cert}: {exc.strerror}") from exc
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        try:
            cert = x509.load_der_x509_certificate(data)
        except ValueError as exc:
            raise RpiServeError(f"{ca_cert} is not a PEM or DER certificate") from exc
    return cert.public_bytes(serialization.Encoding.DER)


def eeprom_config(host: str, port: int, http_path: str, *, ca_cert: Path | None) -> str:
    """The ``boot.conf`` lines for HTTP boot from ``host:port/http_path``.

    With ``ca_cert`` the download is HTTPS and trusts only that CA (BCM2712: Pi 5, CM5);
    without it the bootloader uses plain HTTP and only the signature protects the Pi.
    """
    if not _HOST.fullmatch(host):
        raise RpiServeError(
            f"HTTP_HOST {host!r}: the bootloader takes lower-case letters, digits, '-' and '.'"
        )
    lines = [
        "[all]",
        "BOOT_ORDER=0xf71",
        "NET_INSTALL_ENABLED=0",
        f"HTTP_HOST={host}",
        f"HTTP_PORT={port}",
        f"HTTP_PATH={http_path}",
    ]
    if ca_cert is not None:
        lines.append(f"HTTP_CACERT_HASH={hashlib.sha256(ca_der(ca_cert)).hexdigest()}")
    return "\n".join(lines) + "\n"
