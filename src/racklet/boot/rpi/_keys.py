"""Load and create the RSA-2048 key a Pi's signed-boot EEPROM trusts.

The bootloader only understands RSA-2048 with exponent 65537, so anything else is refused
here with a clear message rather than producing a pair the Pi would reject at boot. New
private keys are written with mode 0600 and atomically (temp file, then ``os.replace``).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from racklet.boot.rpi.errors import SigningKeyError
from racklet.config import write_atomic

KEY_BITS = 2048
_EXPONENT = 65537


def _check(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, path: Path) -> None:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    numbers = public.public_numbers()
    if key.key_size != KEY_BITS or numbers.e != _EXPONENT:
        raise SigningKeyError(
            f"{path}: RSA-{key.key_size} e={numbers.e}; the Pi bootloader needs RSA-2048 e=65537"
        )


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """An unencrypted PEM RSA-2048 private key (PKCS#1 or PKCS#8)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningKeyError(f"{path} is not an RSA key; the Pi bootloader needs RSA-2048")
    _check(key, path)
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """A PEM RSA-2048 public key (what ``rpi-eeprom-config --pubkey`` takes)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SigningKeyError(f"{path} is not an RSA public key")
    _check(key, path)
    return key


def generate_key(path: Path) -> rsa.RSAPublicKey:
    """Create a new RSA-2048 private key at ``path`` (0600) and its public key beside it."""
    if path.exists():
        raise SigningKeyError(f"{path} already exists; refusing to overwrite a signing key")
    key = rsa.generate_private_key(public_exponent=_EXPONENT, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, mode=0o600)
    public = key.public_key()
    write_atomic(
        public_path(path),
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return public


def public_path(private: Path) -> Path:
    """Where the public half of ``private`` is kept: ``KEY.pub.pem`` next to ``KEY``."""
    return private.with_name(f"{private.stem}.pub.pem")
