"""A built ``boot.img``/``boot.sig`` pair, opened once, checked, and read only from then on.

The listener serves exactly these two open files. Opening them once pins their inodes: a
rebuild (which replaces the files with ``os.replace``) never changes what is being served
until the owner calls :meth:`PairSnapshot.load` again, so every byte served was checked at
load time. The check is the one the Pi's bootloader makes: the image's SHA-256 must equal
the hash in ``boot.sig`` and, when a public key is given, the ``rsa2048`` signature must
verify with it. Reads use ``os.pread``, so concurrent downloads share no file offset. This
module does no networking.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from racklet.boot.rpi._build import IMAGE_NAME, SIG_NAME
from racklet.boot.rpi._keys import load_public_key
from racklet.boot.rpi._sig import BootSig, parse_sig, verify_sig
from racklet.boot.rpi.errors import DigestError, RpiBootError

_HASH_CHUNK = 1 << 20
_MAX_SIG_BYTES = 4096  # three short text lines; anything larger is not a boot.sig


@dataclass(frozen=True)
class PairFile:
    """One open file of the pair: its descriptor and its size at load time."""

    name: str
    fd: int
    size: int


class PairSnapshot:
    """The open, checked pair; :meth:`close` (idempotent) releases both descriptors."""

    def __init__(self, image: PairFile, sig_file: PairFile, sig: BootSig, signed: bool) -> None:
        self.image = image
        self.sig_file = sig_file
        self.sig = sig
        self.signed = signed  # True when the RSA signature was checked with a public key
        self._closed = False

    @classmethod
    def load(cls, pair_dir: Path, public_key: Path | None = None) -> PairSnapshot:
        """Open ``pair_dir/boot.img`` and ``boot.sig`` and check them (blocking: hashes)."""
        key = load_public_key(public_key) if public_key is not None else None
        image = _open(pair_dir / IMAGE_NAME)
        try:
            sig_file = _open(pair_dir / SIG_NAME)
        except RpiBootError:
            os.close(image.fd)
            raise
        try:
            if sig_file.size > _MAX_SIG_BYTES:
                raise DigestError(f"{pair_dir / SIG_NAME} is {sig_file.size} bytes: not a boot.sig")
            try:
                text = os.pread(sig_file.fd, sig_file.size, 0).decode("ascii")
            except UnicodeDecodeError as exc:
                raise DigestError(f"{pair_dir / SIG_NAME} is not ASCII text") from exc
            sig = parse_sig(text)
            digest = _sha256(image)
            if key is None:
                if sig.sha256 != digest:
                    raise DigestError("boot.img does not match the SHA-256 in boot.sig")
            else:
                verify_sig(sig, digest, key)
        except (RpiBootError, OSError) as exc:
            os.close(image.fd)
            os.close(sig_file.fd)
            if isinstance(exc, OSError):
                raise RpiBootError(f"cannot read the boot pair in {pair_dir}: {exc}") from exc
            raise
        return cls(image, sig_file, sig, signed=key is not None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.image.fd)
            os.close(self.sig_file.fd)


def read_at(file: PairFile, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes of ``file`` from ``offset`` (blocking)."""
    return os.pread(file.fd, length, offset)


def _open(path: Path) -> PairFile:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise RpiBootError(
            f"{path} does not exist; build the pair first (python -m racklet.boot.rpi build)"
        ) from exc
    except OSError as exc:
        raise RpiBootError(f"cannot open {path}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RpiBootError(f"{path} is not a regular file")
    return PairFile(path.name, fd, info.st_size)


def _sha256(file: PairFile) -> bytes:
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(file.fd, _HASH_CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    if offset != file.size:
        raise DigestError(f"{file.name} changed size while it was being checked")
    return digest.digest()
