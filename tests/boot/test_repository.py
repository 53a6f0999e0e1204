"""The publish side: the TUF repository (keys, roles, atomic publishing, refresh) and the
deterministic default payload."""

from __future__ import annotations

import datetime as dt
import io
import json
import stat
import tarfile
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

import racklet.boot as boot
from racklet.boot import (
    Expiry,
    PublishError,
    RepositoryError,
    TufRepository,
    build_default_payload,
    ensure_boot_repository,
    parse_agent_config,
    refresh_timestamp,
)


def test_public_surface_is_pinned() -> None:
    assert set(boot.__all__) == {
        "DEFAULT_CHANNEL",
        "MAX_PAYLOAD_BYTES",
        "MIN_PAYLOAD_BYTES",
        "P2P_PREFIX",
        "AgentConfig",
        "BootError",
        "BootLimits",
        "BootedPayload",
        "BulkLimits",
        "BulkTargetServer",
        "Expiry",
        "Peer",
        "FetchError",
        "ManifestError",
        "MetadataError",
        "PayloadError",
        "PayloadManifest",
        "PublishError",
        "PublishedRelease",
        "ReleaseFile",
        "RepositoryError",
        "RollbackError",
        "SignatureError",
        "TrialBoot",
        "TrustBundle",
        "TrustError",
        "TufRepository",
        "UnitIdentity",
        "VerificationError",
        "build_default_payload",
        "fetch_verified_target",
        "ensure_boot_repository",
        "install_held_payload",
        "parse_agent_config",
        "refresh_timestamp",
        "slot_payload",
        "unit_client_context",
        "unit_live_server_context",
        "unit_server_context",
        "controller_identity",
        "verify_held_payload",
        "version_key",
    }


def _metadata(repo: TufRepository, name: str) -> Metadata:  # type: ignore[type-arg]
    return Metadata.from_bytes((repo.metadata_dir / name).read_bytes())


def _timestamp_version(repo: TufRepository) -> int:
    return int(_metadata(repo, "timestamp.json").signed.version)


def test_keys_are_private_and_root_keys_live_apart(tmp_path: Path) -> None:
    repo = TufRepository.create(tmp_path / "boot", root_keys=3, root_threshold=2)
    root_keys = sorted(p.name for p in repo.root_keys_dir.iterdir())
    online = sorted(p.name for p in repo.online_keys_dir.iterdir())
    assert root_keys == ["root-1.pem", "root-2.pem", "root-3.pem"]
    assert online == ["snapshot.pem", "stable.pem", "targets.pem", "timestamp.pem"]
    for key in [*repo.root_keys_dir.iterdir(), *repo.online_keys_dir.iterdir()]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for directory in (repo.root_keys_dir, repo.online_keys_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    served = [p for p in repo.repo_dir.rglob("*") if p.is_file()]
    assert not [p for p in served if b"PRIVATE KEY" in p.read_bytes()]


def test_root_threshold_and_delegation_per_channel(tmp_path: Path) -> None:
    repo = TufRepository.create(
        tmp_path / "boot", channels=("stable", "beta"), root_keys=3, root_threshold=2
    )
    root = _metadata(repo, "1.root.json")
    assert root.signed.roles["root"].threshold == 2
    assert len(root.signed.roles["root"].keyids) == 3
    root.signed.verify_delegate("root", root.signed_bytes, root.signatures)
    targets = _metadata(repo, "1.targets.json")
    root.signed.verify_delegate("targets", targets.signed_bytes, targets.signatures)
    assert set(targets.signed.delegations.roles) == {"stable", "beta"}
    beta = _metadata(repo, "1.beta.json")
    targets.signed.verify_delegate("beta", beta.signed_bytes, beta.signatures)
    assert targets.signed.delegations.roles["beta"].is_delegated_path("beta/os/1.0/payload.bin")
    assert not targets.signed.delegations.roles["beta"].is_delegated_path("stable/current.json")
    timestamp = _metadata(repo, "timestamp.json")
    lifetime = timestamp.signed.expires - dt.datetime.now(dt.UTC)
    assert lifetime <= dt.timedelta(days=1)


@pytest.mark.parametrize(("keys", "threshold"), [(1, 2), (2, 0), (3, 4)])
def test_impossible_root_threshold_is_refused(tmp_path: Path, keys: int, threshold: int) -> None:
    with pytest.raises(PublishError, match="threshold"):
        TufRepository.create(tmp_path / "boot", root_keys=keys, root_threshold=threshold)


def test_publish_is_consistent_and_listed(tmp_path: Path) -> None:
    repo = TufRepository.create(tmp_path / "boot")
    first = repo.publish("stable", "racklet-os", "0.1.0", {"payload.bin": b"one" * 100})
    source = tmp_path / "payload.bin"
    source.write_bytes(b"two" * 100)
    second = repo.publish("stable", "racklet-os", "0.2.0", {"payload.bin": source})
    for release in (first, second):
        file = release.files[0]
        directory = repo.targets_dir / "stable" / "racklet-os" / release.version
        assert (directory / f"{file.sha256}.payload.bin").stat().st_size == 300
    assert _timestamp_version(repo) == 3
    names = {p.name for p in repo.metadata_dir.iterdir()}
    assert {"1.stable.json", "2.stable.json", "3.stable.json", "3.snapshot.json"} <= names
    listed = {(r.version, r.current) for r in repo.list()}
    assert listed == {("0.1.0", False), ("0.2.0", True)}
    assert TufRepository.open(repo.base).list() == repo.list()


def test_failed_publish_leaves_the_served_state_untouched(tmp_path: Path) -> None:
    repo = TufRepository.create(tmp_path / "boot")
    repo.publish("stable", "racklet-os", "0.1.0", {"payload.bin": b"one" * 100})
    before = {p.name: p.read_bytes() for p in repo.metadata_dir.iterdir()}
    files = {"payload.bin": b"two" * 100, "rootfs.img": tmp_path / "missing.img"}
    with pytest.raises(PublishError, match=r"missing\.img"):
        repo.publish("stable", "racklet-os", "0.2.0", files)
    assert {p.name: p.read_bytes() for p in repo.metadata_dir.iterdir()} == before
    assert [(r.version, r.current) for r in repo.list()] == [("0.1.0", True)]
    leftovers = [p for p in repo.targets_dir.rglob(".*")]
    assert leftovers == []


def test_publish_validates_its_inputs(tmp_path: Path) -> None:
    repo = TufRepository.create(tmp_path / "boot")
    good = {"payload.bin": b"x"}
    with pytest.raises(PublishError, match="unknown channel 'beta'"):
        repo.publish("beta", "racklet-os", "1.0", good)
    with pytest.raises(PublishError, match="release name"):
        repo.publish("stable", "Bad Name", "1.0", good)
    with pytest.raises(PublishError, match="version"):
        repo.publish("stable", "racklet-os", "", good)
    with pytest.raises(PublishError, match="file name"):
        repo.publish("stable", "racklet-os", "1.0", {"../escape": b"x"})
    with pytest.raises(PublishError, match="at least one file"):
        repo.publish("stable", "racklet-os", "1.0", {})
    with pytest.raises(PublishError, match="between 1 and"):
        repo.publish("stable", "racklet-os", "1.0", {"payload.bin": b""})
    assert repo.list() == []
    with pytest.raises(PublishError, match="already exists"):
        TufRepository.create(repo.base)
    with pytest.raises(RepositoryError, match="no TUF repository"):
        TufRepository.open(tmp_path / "elsewhere")


def test_timestamp_is_refreshed_before_it_expires(tmp_path: Path) -> None:
    expiry = Expiry(timestamp=dt.timedelta(hours=1), snapshot=dt.timedelta(days=7))
    repo = TufRepository.create(tmp_path / "boot", expiry=expiry)
    assert refresh_timestamp(repo) is False  # fresh: nothing to do
    assert _timestamp_version(repo) == 1
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=40)
    assert repo.refresh(now=later) is True
    timestamp = _metadata(repo, "timestamp.json")
    assert timestamp.signed.version == 2
    assert timestamp.signed.expires > later + dt.timedelta(minutes=59)
    snapshot_version = timestamp.signed.snapshot_meta.version
    much_later = later + dt.timedelta(days=5)  # the snapshot is past half its life too
    assert repo.refresh(now=much_later) is True
    timestamp = _metadata(repo, "timestamp.json")
    assert timestamp.signed.snapshot_meta.version == snapshot_version + 1


def test_rack_repository_is_prepared_once(tmp_path: Path) -> None:
    boot_dir = tmp_path / "boot"
    root = ensure_boot_repository(boot_dir, 8192)
    repo = TufRepository.open(boot_dir)
    assert root.encode() == repo.root_bytes()
    assert json.loads(root)["signed"]["_type"] == "root"
    (release,) = repo.list()
    assert release.current and release.files[0].length == 8192
    version = _timestamp_version(repo)
    assert ensure_boot_repository(boot_dir, 8192) == root
    assert _timestamp_version(repo) == version  # nothing republished
    ensure_boot_repository(boot_dir, 16384)
    assert [f.length for r in repo.list() for f in r.files] == [16384]


def test_default_payload_is_deterministic_and_exact() -> None:
    first = build_default_payload(65536, "0.1.0")
    assert first == build_default_payload(65536, "0.1.0")
    assert len(first) == 65536
    assert build_default_payload(65536, "0.2.0") != first
    assert len(build_default_payload(10_001)) == 10_001


def test_default_payload_is_a_tar_with_the_agent_config() -> None:
    data = build_default_payload(20000, "1.2.3")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        agent = archive.extractfile("agent.json")
        assert agent is not None
        config = parse_agent_config(agent.read())
        os_release = archive.extractfile("etc/os-release")
        assert os_release is not None
        assert b'VERSION_ID="1.2.3"' in os_release.read()
    assert names == ["etc/os-release", "agent.json", "rootfs.img"]
    assert config.version == "1.2.3"
    assert config.os_boot_seconds >= 0
    assert config.heartbeat_interval_seconds > 0


@pytest.mark.parametrize("size", [0, 100, 4095, (1 << 30) + 1, -1])
def test_default_payload_rejects_sizes_out_of_bounds(size: int) -> None:
    with pytest.raises(PublishError, match="between"):
        build_default_payload(size)


def test_default_payload_rejects_a_bad_version() -> None:
    with pytest.raises(PublishError, match="version"):
        build_default_payload(65536, "../../etc")
