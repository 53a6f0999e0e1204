"""Signing keys of the TUF repository on disk: one PEM file per key, mode 0600.

Root keys live in their own directory (``root-keys/``), apart from the online keys
(``keys/``: targets, snapshot, timestamp and one per release channel), so an operator can
move the root keys offline (a USB stick, an HSM) and the controller keeps publishing with the
online keys alone. This module stores and loads keys; it decides nothing about trust.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from racklet.boot._tuf_api import CryptoSigner
from racklet.boot.errors import RepositoryError
from racklet.config import make_dir, write_private

ROOT_KEYS_DIR = "root-keys"
ONLINE_KEYS_DIR = "keys"


def _private_dir(path: Path) -> None:
    make_dir(path)
    os.chmod(path, 0o700)


def new_key(directory: Path, name: str) -> CryptoSigner:
    """Generate an Ed25519 key, store it as ``<directory>/<name>.pem`` (0600)."""
    signer = CryptoSigner.generate_ed25519()
    _private_dir(directory)
    write_private(directory / f"{name}.pem", signer.private_bytes)
    return signer


def load_key(directory: Path, name: str) -> CryptoSigner:
    """Load ``<directory>/<name>.pem``; a missing or unreadable key is a RepositoryError."""
    path = directory / f"{name}.pem"
    try:
        private = load_pem_private_key(path.read_bytes(), None)
        return CryptoSigner(private)
    except FileNotFoundError as exc:
        raise RepositoryError(f"signing key {path} is missing") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise RepositoryError(f"cannot load signing key {path}: {exc}") from exc


def root_key_names(directory: Path) -> list[str]:
    """Names of the root keys present (``root-1``, ``root-2``, ...), in order."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("root-*.pem"))
