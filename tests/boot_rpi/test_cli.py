"""``python -m racklet.boot.rpi``: the walk-through commands, and one-line errors on bad input."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "racklet.boot.rpi", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def test_keygen_build_verify(payload: Path, tmp_path: Path) -> None:
    key = tmp_path / "rpi-signing.pem"
    done = _cli("keygen", "--out", key)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = tmp_path / "rpi-signing.pub.pem"
    assert public.is_file()
    done = _cli("build", "--payload", payload, "--key", key, "--out", tmp_path / "www")
    assert done.returncode == 0, done.stderr
    assert "boot.img" in done.stdout and "boot.sig" in done.stdout
    done = _cli("verify", "--dir", tmp_path / "www", "--pubkey", public)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("boot.img verified: sha256 ")
    _one_line_error(_cli("keygen", "--out", key), "refusing to overwrite")


def test_verify_rejects_a_tampered_image(payload: Path, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert _cli("keygen", "--out", key).returncode == 0
    assert _cli("build", "--payload", payload, "--key", key, "--out", tmp_path).returncode == 0
    image = tmp_path / "boot.img"
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF
    image.write_bytes(bytes(data))
    _one_line_error(
        _cli("verify", "--dir", tmp_path, "--pubkey", tmp_path / "k.pub.pem"), "does not match"
    )


@pytest.mark.parametrize(
    ("genkey", "fragment"),
    [
        (["openssl", "genrsa", "-out", "{key}", "4096"], "needs RSA-2048"),
        (["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-out", "{key}"], "not an RSA"),
        (["sh", "-c", "echo not a key > {key}"], "not an unencrypted PEM private key"),
    ],
)
def test_build_refuses_keys_the_pi_cannot_use(
    payload: Path, tmp_path: Path, genkey: list[str], fragment: str
) -> None:
    key = tmp_path / "bad.pem"
    subprocess.run([a.format(key=key) for a in genkey], check=True, capture_output=True)
    _one_line_error(_cli("build", "--payload", payload, "--key", key, "--out", tmp_path), fragment)
    assert not (tmp_path / "boot.img").exists()


def test_build_refuses_bad_payloads(payload: Path, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert _cli("keygen", "--out", key).returncode == 0
    out = tmp_path / "out"
    _one_line_error(
        _cli("build", "--payload", tmp_path / "nope", "--key", key, "--out", out),
        "is not a directory",
    )
    (payload / "config.txt").unlink()
    _one_line_error(
        _cli("build", "--payload", payload, "--key", key, "--out", out), "has no config.txt"
    )
    (payload / "config.txt").write_text("kernel=kernel_2712.img\n")
    (payload / "link").symlink_to("/etc/passwd")
    _one_line_error(_cli("build", "--payload", payload, "--key", key, "--out", out), "symlink")
    assert not (out / "boot.img").exists() and not (out / "boot.sig").exists()
