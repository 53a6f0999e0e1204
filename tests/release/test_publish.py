"""``racklet release publish|list`` against a real API and a real TUF repository."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from racklet.api import Release
from racklet.bmc import build_manifest
from racklet.boot import TufRepository
from tests.cli.conftest import LiveApi
from tests.release.conftest import payload_file


def _snapshot_state(repo: TufRepository) -> tuple[bytes, list[str]]:
    """The timestamp (the switch units read) and every file under the repository."""
    files = sorted(str(p.relative_to(repo.base)) for p in repo.base.rglob("*") if p.is_file())
    return (repo.metadata_dir / "timestamp.json").read_bytes(), files


def test_publish_signs_targets_and_records_the_release(
    live: LiveApi, repo: TufRepository, tmp_path: Path
) -> None:
    payload = payload_file(tmp_path / "build", "0.2.0")
    notes = tmp_path / "build" / "NOTES.txt"
    notes.write_text("faster boot\n")
    result = live.cli(
        "release", "publish", "--name", "racklet-os", "--version", "0.2.0", str(payload), str(notes)
    )
    assert result.code == 0, result.err
    assert "release/racklet-os-0-2-0 published" in result.out
    signed = {(r.name, r.version): r for r in repo.list()}
    release = signed[("racklet-os", "0.2.0")]
    assert not release.current, "publishing alone must not move the channel"
    assert signed[("racklet-os", "0.1.0")].current
    obj = live.run(live.store.get(Release, "racklet-os-0-2-0"))
    assert obj.spec.channel == "stable" and obj.spec.version == "0.2.0"
    by_name = {t.name: t for t in obj.spec.targets}
    data = payload.read_bytes()
    assert by_name["payload.bin"].sha256 == hashlib.sha256(data).hexdigest()
    assert by_name["payload.bin"].length == len(data)
    assert by_name["payload.bin"].path == "stable/racklet-os/0.2.0/payload.bin"
    assert by_name["NOTES.txt"].length == len(b"faster boot\n")

    listing = live.cli("release", "list")
    assert listing.code == 0, listing.err
    rows = [line.split() for line in listing.out.splitlines()]
    assert rows[0][:4] == ["NAME", "PACKAGE", "VERSION", "CHANNEL"]
    row = next(r for r in rows if r[2] == "0.2.0")
    assert row[0] == "racklet-os-0-2-0" and row[5] == "2"
    old = next(r for r in rows if r[2] == "0.1.0")
    assert old[0] == "(racklet-os-0-1-0)" and old[4] == "*"  # no resource; current


def test_publish_current_moves_the_channel(
    live: LiveApi, repo: TufRepository, tmp_path: Path
) -> None:
    payload = payload_file(tmp_path / "b", "0.3.0")
    result = live.cli(
        "release",
        "publish",
        "--name",
        "racklet-os",
        "--version",
        "0.3.0",
        "--current",
        str(payload),
    )
    assert result.code == 0, result.err
    current = [r for r in repo.list() if r.current]
    assert [(r.name, r.version) for r in current] == [("racklet-os", "0.3.0")]


def _refused(live: LiveApi, repo: TufRepository, *args: str) -> str:
    before = _snapshot_state(repo)
    releases_before = live.run(live.store.list(Release))
    result = live.cli("release", "publish", *args)
    assert result.code != 0
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    assert _snapshot_state(repo) == before, "nothing may be half-published"
    assert live.run(live.store.list(Release)) == releases_before
    return lines[0]


def test_bad_files_are_refused_with_one_line(
    live: LiveApi, repo: TufRepository, tmp_path: Path
) -> None:
    base = ("--name", "racklet-os", "--version", "0.2.0")
    (tmp_path / "dir").mkdir()
    assert "not a regular file" in _refused(live, repo, *base, str(tmp_path / "dir"))
    empty = tmp_path / "e" / "payload.bin"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    assert "is empty" in _refused(live, repo, *base, str(empty))
    junk = tmp_path / "j" / "payload.bin"
    junk.parent.mkdir()
    junk.write_bytes(b"\x7fELF not a tar archive" * 100)
    assert "not a payload tar archive" in _refused(live, repo, *base, str(junk))
    notar = tmp_path / "n" / "payload.bin"
    notar.parent.mkdir()
    with tarfile.open(notar, "w") as archive:
        archive.add(tmp_path / "dir", arcname="etc")
    assert "has no agent.json" in _refused(live, repo, *base, str(notar))
    wrong = payload_file(tmp_path / "w", "0.9.0")
    assert "says version 0.9.0, not 0.2.0" in _refused(live, repo, *base, str(wrong))
    other = tmp_path / "kernel.img"
    other.write_bytes(b"k" * 100)
    assert "needs a file named payload.bin" in _refused(live, repo, *base, str(other))
    assert "no such file" in _refused(live, repo, *base, str(tmp_path / "missing"))


def test_bad_channel_version_and_duplicates_are_refused(
    live: LiveApi, repo: TufRepository, tmp_path: Path
) -> None:
    payload = payload_file(tmp_path / "b", "0.2.0")
    assert "unknown channel 'beta'" in _refused(
        live, repo, "--name", "racklet-os", "--version", "0.2.0", "--channel", "beta", str(payload)
    )
    assert "spec.version" in _refused(
        live, repo, "--name", "racklet-os", "--version", "two", str(payload)
    )
    ok = live.cli("release", "publish", "--name", "racklet-os", "--version", "0.2.0", str(payload))
    assert ok.code == 0, ok.err
    again = _refused(live, repo, "--name", "racklet-os", "--version", "0.2.0", str(payload))
    assert "already exists in channel stable" in again


def test_a_publish_whose_resource_was_lost_is_recorded_on_retry(
    live: LiveApi, repo: TufRepository, tmp_path: Path
) -> None:
    payload = payload_file(tmp_path / "b", "0.2.0")
    repo.publish("stable", "racklet-os", "0.2.0", {"payload.bin": payload}, current=False)
    result = live.cli(
        "release", "publish", "--name", "racklet-os", "--version", "0.2.0", str(payload)
    )
    assert result.code == 0, result.err
    assert live.run(live.store.get(Release, "racklet-os-0-2-0")).spec.version == "0.2.0"


def test_bmc_firmware_channel_takes_exactly_one_valid_image_of_its_version(
    live: LiveApi, repo: TufRepository, tmp_path: Path
) -> None:
    base = ("--name", "racklet-bmc", "--version", "0.2.0", "--channel", "bmc-firmware")
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"not a firmware image")
    assert "not a BMC firmware image" in _refused(live, repo, *base, str(junk))
    older = tmp_path / "older.img"
    older.write_bytes(build_manifest("0.1.9", b"fw"))
    assert "says version 0.1.9, not --version 0.2.0" in _refused(live, repo, *base, str(older))
    image = tmp_path / "bmc.img"
    image.write_bytes(build_manifest("0.2.0", b"fw"))
    assert "exactly one image" in _refused(live, repo, *base, str(image), str(older))
    ok = live.cli("release", "publish", *base, str(image))  # no --kind: the channel says it
    assert ok.code == 0, ok.err
    reopened = TufRepository.open(repo.base)  # the CLI added the channel on disk
    assert ("racklet-bmc", "0.2.0") in {(r.name, r.version) for r in reopened.list()}
