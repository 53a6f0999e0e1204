"""Build a signed ``boot.img``/``boot.sig`` pair from a payload directory.

This is the one call the boot server (or the CLI) needs: it makes the FAT image, hashes it,
signs the hash with the rack's Pi signing key and writes both files into ``out_dir``, the
image first and the signature last, each via a temporary name and ``os.replace`` so a reader
never sees a half-written file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from racklet.boot.rpi._fat import build_fat_image
from racklet.boot.rpi._keys import load_private_key, load_public_key
from racklet.boot.rpi._sig import BootSig, parse_sig, sha256_file, sign_digest, verify_sig
from racklet.boot.rpi.errors import DigestError, RpiBootError
from racklet.config import atomic_file

IMAGE_NAME = "boot.img"
SIG_NAME = "boot.sig"


@dataclass(frozen=True)
class BootPair:
    """Where a built pair lives and what its signature file says."""

    image: Path
    sig_path: Path
    size: int
    sig: BootSig


def build_boot_pair(
    payload: Path,
    key: Path | rsa.RSAPrivateKey,
    out_dir: Path,
    *,
    timestamp: int | None = None,
) -> BootPair:
    """Make ``out_dir/boot.img`` from ``payload`` and sign it into ``out_dir/boot.sig``."""
    private = load_private_key(key) if isinstance(key, Path) else key
    if private.key_size != 2048:
        raise RpiBootError(f"the Pi bootloader needs RSA-2048, not RSA-{private.key_size}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RpiBootError(f"cannot create {out_dir}: {exc.strerror}") from exc
    image, sig_path = out_dir / IMAGE_NAME, out_dir / SIG_NAME
    try:
        with atomic_file(sig_path, mode=0o644) as sig_out:
            with atomic_file(image, mode=0o644) as image_out:
                size = build_fat_image(payload, image_out.temp)
                sig = sign_digest(
                    private,
                    sha256_file(image_out.temp),
                    timestamp=int(time.time()) if timestamp is None else timestamp,
                )
            sig_out.write(sig.render().encode("ascii"))  # the image has its name: sig last
    except OSError as exc:
        raise RpiBootError(f"cannot write the boot pair in {out_dir}: {exc}") from exc
    return BootPair(image=image, sig_path=sig_path, size=size, sig=sig)


def verify_boot_pair(image: Path, sig_path: Path, public_key: Path) -> BootSig:
    """Check a pair as a signed-boot Pi does; return the parsed signature file."""
    key = load_public_key(public_key)
    try:
        sig = parse_sig(sig_path.read_text(encoding="ascii"))
        digest = sha256_file(image)
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"cannot read the boot pair: {exc}") from exc
    verify_sig(sig, digest, key)
    return sig
