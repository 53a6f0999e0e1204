"""VM images through TUF: published into the ``vm-images`` channel, fetched by a unit with the
strict TUF client; a tampered or unsigned image is refused with the reason."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from racklet.boot import BootLimits, TufRepository
from racklet.boot._tuf_client import fetch_target
from racklet.boot.errors import BootError, ManifestError, PayloadError
from racklet.vm import pack_image, read_image
from tests.ab.rig import DiskFetcher

BASE = "https://127.0.0.1:1/boot/v1"
IMAGE_TARGET = "vm-images/busybox/1.0.0/image.tar"


def _repo(tmp_path: Path) -> TufRepository:
    repo = TufRepository.create(tmp_path / "boot", channels=("stable", "vm-images"))
    image = pack_image("busybox", "1.0.0", b"k" * 1000, b"i" * 1000)
    repo.publish("vm-images", "busybox", "1.0.0", {"image.tar": image}, current=False)
    return repo


def _fetch(repo: TufRepository, tmp_path: Path, target: str) -> bytes:
    return fetch_target(
        root=repo.root_bytes(),
        metadata_dir=tmp_path / "unit" / "tuf-vm",
        base_url=BASE,
        target_path=target,
        fetcher=DiskFetcher(repo.repo_dir),
        limits=BootLimits(),
        max_bytes=10_000_000,
    )


def test_a_published_image_is_fetched_verified(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    image = read_image(_fetch(repo, tmp_path, IMAGE_TARGET))
    assert (image.name, image.version, image.kernel) == ("busybox", "1.0.0", b"k" * 1000)


def test_a_tampered_image_is_refused(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (stored,) = (repo.targets_dir / "vm-images/busybox/1.0.0").glob("*.image.tar")
    data = bytearray(stored.read_bytes())
    data[-600] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(PayloadError, match="hash mismatch"):
        _fetch(repo, tmp_path, IMAGE_TARGET)


def test_an_unsigned_image_is_refused(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    with pytest.raises(ManifestError, match="not a signed target"):
        _fetch(repo, tmp_path, "vm-images/busybox/9.9.9/image.tar")


def _fetch_held(repo: TufRepository, tmp_path: Path, target: str, held: dict[str, bytes]) -> bytes:
    return fetch_target(
        root=repo.root_bytes(),
        metadata_dir=tmp_path / "unit" / "tuf-vm",
        base_url=BASE,
        target_path=target,
        fetcher=DiskFetcher(repo.repo_dir),
        limits=BootLimits(),
        max_bytes=10_000_000,
        held=held.get,
    )


def test_bytes_held_ahead_of_time_are_checked_against_fresh_metadata(tmp_path: Path) -> None:
    """An image fetched ahead of time (a unit that may take a VM over) is used without a
    download only if it has the signed length and SHA-256; other bytes are ignored."""
    repo = _repo(tmp_path)
    good = _fetch(repo, tmp_path, IMAGE_TARGET)
    sha = hashlib.sha256(good).hexdigest()
    (stored,) = (repo.targets_dir / "vm-images/busybox/1.0.0").glob("*.image.tar")
    stored.unlink()  # nothing to download: only the held copy can serve
    assert _fetch_held(repo, tmp_path, IMAGE_TARGET, {sha: good}) == good
    forged = bytearray(good)
    forged[-600] ^= 0xFF
    with pytest.raises(BootError):  # not the signed bytes: a download is tried (and has none)
        _fetch_held(repo, tmp_path, IMAGE_TARGET, {sha: bytes(forged)})
    with pytest.raises(ManifestError, match="not a signed target"):  # held or not
        _fetch_held(repo, tmp_path, "vm-images/busybox/9.9.9/image.tar", {sha: good})
