"""The boot.img/boot.sig pair, checked with the tools a Pi owner and the firmware would use:
openssl for the signature, sha256sum for the hash line, mtools and fsck.fat for the image."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from racklet.boot.rpi import (
    DigestError,
    build_boot_pair,
    parse_sig,
    verify_boot_pair,
)
from tests.boot_rpi.conftest import CMDLINE_TXT, PAYLOAD_FILES


def _openssl_verify(image: Path, sig_file: Path, public: Path, work: Path) -> bool:
    """rpi-eeprom-digest's check: the rsa2048 hex line to binary, then openssl dgst -verify."""
    line = next(x for x in sig_file.read_text().splitlines() if x.startswith("rsa2048: "))
    sig_bin = work / "sig.bin"
    sig_bin.write_bytes(bytes.fromhex(line.split(" ", 1)[1]))
    verify = ["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(sig_bin)]
    done = subprocess.run(
        [*verify, str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0 and "Verified OK" in done.stdout


def test_sig_file_has_rpi_eeprom_digest_layout(
    payload: Path, openssl_key: tuple[Path, Path], tmp_path: Path
) -> None:
    pair = build_boot_pair(payload, openssl_key[0], tmp_path / "out", timestamp=1_700_000_000)
    lines = pair.sig_path.read_text().split("\n")
    assert lines[-1] == "" and len(lines) == 4, "three newline-terminated lines"
    sha256sum = subprocess.run(
        ["sha256sum", str(pair.image)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert lines[0] == sha256sum
    assert lines[1] == "ts: 1700000000"
    assert re.fullmatch(r"rsa2048: [0-9a-f]{512}", lines[2])


def test_openssl_verifies_pair_and_signs_identically(
    payload: Path, openssl_key: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = openssl_key
    pair = build_boot_pair(payload, private, tmp_path / "out")
    assert _openssl_verify(pair.image, pair.sig_path, public, tmp_path)
    # PKCS#1 v1.5 is deterministic: `rpi-eeprom-digest -k` (openssl dgst -sign) gives these bytes
    theirs = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(private), str(pair.image)],
        capture_output=True,
        check=True,
    ).stdout
    assert parse_sig(pair.sig_path.read_text()).signature == theirs


def test_tampered_image_fails_openssl_and_racklet(
    payload: Path, openssl_key: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = openssl_key
    pair = build_boot_pair(payload, private, tmp_path / "out")
    data = bytearray(pair.image.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the kernel's clusters
    pair.image.write_bytes(bytes(data))
    assert not _openssl_verify(pair.image, pair.sig_path, public, tmp_path)
    with pytest.raises(DigestError, match="does not match the SHA-256"):
        verify_boot_pair(pair.image, pair.sig_path, public)


def test_signature_from_another_key_is_rejected(
    payload: Path, openssl_key: tuple[Path, Path], tmp_path: Path
) -> None:
    private, _ = openssl_key
    pair = build_boot_pair(payload, private, tmp_path / "out")
    other_public = tmp_path / "other.pub.pem"
    other_private = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(other_private), "2048"], check=True, capture_output=True
    )
    subprocess.run(
        ["openssl", "rsa", "-in", str(other_private), "-pubout", "-out", str(other_public)],
        check=True,
        capture_output=True,
    )
    assert not _openssl_verify(pair.image, pair.sig_path, other_public, tmp_path)
    with pytest.raises(DigestError, match="signature does not verify"):
        verify_boot_pair(pair.image, pair.sig_path, other_public)


def test_image_is_a_clean_fat16_holding_the_payload(
    payload: Path, openssl_key: tuple[Path, Path], tmp_path: Path
) -> None:
    pair = build_boot_pair(payload, openssl_key[0], tmp_path / "out")
    fsck = subprocess.run(
        ["fsck.fat", "-n", "-v", str(pair.image)], capture_output=True, text=True, check=False
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "2 FATs, 16 bit entries" in fsck.stdout, "FAT16, never FAT12"
    env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
    listing = subprocess.run(
        ["mdir", "-i", str(pair.image), "::/"], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert "bcm2712-rpi-5-b.dtb" in listing, "long file names survive"
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(
        ["mcopy", "-i", str(pair.image), "-s", "-n", "::/*", str(extracted)],
        check=True,
        capture_output=True,
        env=env,
    )
    for name in [*PAYLOAD_FILES, "config.txt", "cmdline.txt"]:
        assert (extracted / name).read_bytes() == (payload / name).read_bytes(), name
    assert (extracted / "cmdline.txt").read_text() == CMDLINE_TXT


def test_image_is_sized_to_the_payload(
    payload: Path, openssl_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """The Pi downloads every byte of boot.img, so it should not be padded far past its files."""
    pair = build_boot_pair(payload, openssl_key[0], tmp_path / "out")
    content = sum(p.stat().st_size for p in payload.rglob("*") if p.is_file())
    assert content < pair.size < content * 1.1 + 256 * 1024
