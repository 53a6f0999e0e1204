"""The ``boot.sig`` format of rpi-eeprom's ``rpi-eeprom-digest``, written and checked.

A ``.sig`` file is three text lines::

    <sha256 of the image, 64 lower-case hex digits>
    ts: <unix time of signing, decimal>
    rsa2048: <RSA-2048 PKCS#1 v1.5 signature over SHA-256 of the image, 512 hex digits>

The bootloader compares the hash, and in signed-boot mode checks the signature with the public
key held in its EEPROM; ``openssl dgst -sha256 -verify pub.pem -signature sig.bin boot.img``
is the same check. This module is the trust kernel for that format: it hashes, signs, formats
and parses, and never touches the network. It does not manage keys (see :mod:`._keys`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from racklet.boot.rpi.errors import DigestError

_READ_BYTES = 1 << 20
_SIG_BYTES = 256  # RSA-2048
_HASH_LINE = re.compile(r"[0-9a-f]{64}")
_TS_LINE = re.compile(r"ts: ([0-9]{1,12})")
_RSA_LINE = re.compile(r"rsa2048: ([0-9a-fA-F]+)")


@dataclass(frozen=True)
class BootSig:
    """The parsed content of a ``boot.sig``: the image's SHA-256, when, and the signature."""

    sha256: bytes
    timestamp: int
    signature: bytes | None

    def render(self) -> str:
        """The file's text, byte for byte what ``rpi-eeprom-digest -k KEY`` writes."""
        lines = [self.sha256.hex(), f"ts: {self.timestamp}"]
        if self.signature is not None:
            lines.append(f"rsa2048: {self.signature.hex()}")
        return "\n".join(lines) + "\n"


def sha256_file(path: Path) -> bytes:
    """SHA-256 of a file, read in 1 MiB pieces so a large image never sits in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_BYTES):
            digest.update(chunk)
    return digest.digest()


def sign_digest(key: rsa.RSAPrivateKey, sha256: bytes, *, timestamp: int) -> BootSig:
    """Sign an image's SHA-256 exactly as ``openssl dgst -sha256 -sign`` signs the image."""
    signature = key.sign(sha256, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    return BootSig(sha256=sha256, timestamp=timestamp, signature=signature)


def parse_sig(text: str) -> BootSig:
    """Parse a ``boot.sig``; raise :class:`DigestError` naming the first bad line."""
    lines = text.splitlines()
    if not lines or not _HASH_LINE.fullmatch(lines[0]):
        raise DigestError("boot.sig: the first line is not a SHA-256 hex digest")
    timestamp: int | None = None
    signature: bytes | None = None
    for number, line in enumerate(lines[1:], start=2):
        if match := _TS_LINE.fullmatch(line):
            timestamp = int(match.group(1))
        elif match := _RSA_LINE.fullmatch(line):
            hex_sig = match.group(1)
            if len(hex_sig) != 2 * _SIG_BYTES:
                raise DigestError(f"boot.sig line {number}: rsa2048 is not {_SIG_BYTES} bytes")
            signature = bytes.fromhex(hex_sig)
        elif line.strip():
            raise DigestError(f"boot.sig line {number}: unexpected {line[:40]!r}")
    if timestamp is None:
        raise DigestError("boot.sig: no 'ts:' line")
    return BootSig(sha256=bytes.fromhex(lines[0]), timestamp=timestamp, signature=signature)


def verify_sig(sig: BootSig, image_sha256: bytes, public_key: rsa.RSAPublicKey) -> None:
    """Accept the image only if the hash matches and the RSA-2048 signature verifies."""
    if sig.sha256 != image_sha256:
        raise DigestError("boot.img does not match the SHA-256 in boot.sig")
    if sig.signature is None:
        raise DigestError("boot.sig has no rsa2048 signature (signed boot requires one)")
    try:
        public_key.verify(
            sig.signature, image_sha256, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
    except InvalidSignature as exc:
        raise DigestError("boot.sig: the RSA signature does not verify with this key") from exc
