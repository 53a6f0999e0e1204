"""A delegated role is trusted per delegator, never reused across delegators.

The repository: the top-level targets role delegates ``a/*`` to ``team-a`` and ``b/*`` to
``team-b``. Each team delegates a role of the same name, ``shared``, with its own key; the one
``shared.json`` the repository holds is signed with team A's ``shared`` key only, and lists a
target under ``a/`` and one under ``b/``. So ``b/evil.bin`` is signed for team A, never for
team B: a client that resolves ``a/good.bin`` first and then reuses the cached ``shared`` role
under team B downloads it. python-tuf's ngclient does (its conformance suite marks this case
an expected failure); Racklet's :class:`StrictUpdater` verifies ``shared`` again against team
B's delegation and refuses it.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tuf.api import exceptions as tuf_errors

from racklet.boot._tuf_api import (
    CryptoSigner,
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
    Updater,
)
from racklet.boot._tuf_updater import StrictUpdater

CLI = [sys.executable, "-m", "racklet.boot.tuf_client"]
GOOD, EVIL, OTHER = b"signed for team A", b"signed for team A, asked for under team B", b"A2"


def _signed(signed: Root | Targets | Snapshot | Timestamp, signer: CryptoSigner) -> bytes:
    md: Metadata[Any] = Metadata(signed)
    md.sign(signer)
    data: bytes = md.to_bytes()
    return data


def _delegate(name: str, signer: CryptoSigner, paths: list[str]) -> Delegations:
    key = signer.public_key
    role = DelegatedRole(name=name, keyids=[key.keyid], threshold=1, terminating=True, paths=paths)
    return Delegations(keys={key.keyid: key}, roles={name: role})


def _build(directory: Path) -> bytes:
    """Write the two-delegator repository (metadata/, targets/); return its root."""
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    keys = {n: CryptoSigner.generate_ed25519() for n in ("root", "targets", "snapshot", "ts")}
    team = {n: CryptoSigner.generate_ed25519() for n in ("a", "b", "shared-a", "shared-b")}
    root = Root(expires=expires, consistent_snapshot=False)
    for role, name in (("root", "root"), ("targets", "targets"), ("snapshot", "snapshot")):
        root.add_key(keys[name].public_key, role)
    root.add_key(keys["ts"].public_key, "timestamp")

    top = Targets(expires=expires)
    top.delegations = _delegate("team-a", team["a"], ["a/*"])
    b = _delegate("team-b", team["b"], ["b/*"])
    top.delegations.keys.update(b.keys)
    assert top.delegations.roles is not None and b.roles is not None
    top.delegations.roles.update(b.roles)
    team_a, team_b = Targets(expires=expires), Targets(expires=expires)
    team_a.delegations = _delegate("shared", team["shared-a"], ["a/*"])
    team_b.delegations = _delegate("shared", team["shared-b"], ["b/*"])
    shared = Targets(expires=expires)
    files = {"a/good.bin": GOOD, "b/evil.bin": EVIL, "a/other.bin": OTHER}
    for path, data in files.items():
        shared.targets[path] = TargetFile.from_data(path, data)

    metadata = {
        "root": _signed(root, keys["root"]),
        "targets": _signed(top, keys["targets"]),
        "team-a": _signed(team_a, team["a"]),
        "team-b": _signed(team_b, team["b"]),
        "shared": _signed(shared, team["shared-a"]),  # team A's key only
    }
    snapshot = Snapshot(expires=expires)
    for name in ("targets", "team-a", "team-b", "shared"):
        snapshot.meta[f"{name}.json"] = MetaFile(version=1)
    metadata["snapshot"] = _signed(snapshot, keys["snapshot"])
    timestamp = Timestamp(expires=expires, snapshot_meta=MetaFile(version=1))
    metadata["timestamp"] = _signed(timestamp, keys["ts"])
    (directory / "metadata").mkdir(parents=True)
    for name, data in metadata.items():
        (directory / "metadata" / f"{name}.json").write_bytes(data)
    (directory / "metadata" / "1.root.json").write_bytes(metadata["root"])
    for path, data in files.items():
        (directory / "targets" / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / "targets" / path).write_bytes(data)
    return metadata["root"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[bytes, str]]:
    root = _build(tmp_path / "repo")
    handler = functools.partial(_Quiet, directory=str(tmp_path / "repo"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _updater(kind: type[Updater], root: bytes, url: str, cache: Path) -> Updater:
    cache.mkdir()
    (cache / "root.json").write_bytes(root)
    updater: Updater = kind(str(cache), f"{url}/metadata/", target_base_url=f"{url}/targets/")
    updater.refresh()
    return updater


def test_the_reference_client_reuses_team_a_role_under_team_b(
    served: tuple[bytes, str], tmp_path: Path
) -> None:
    """The hole, shown in ngclient itself: what Racklet's updater closes."""
    root, url = served
    reference = _updater(Updater, root, url, tmp_path / "reference")
    assert reference.get_targetinfo("a/good.bin") is not None
    assert reference.get_targetinfo("b/evil.bin") is not None  # signed for A, taken under B


def test_a_role_cached_for_team_a_is_verified_again_under_team_b(
    served: tuple[bytes, str], tmp_path: Path
) -> None:
    root, url = served
    strict = _updater(StrictUpdater, root, url, tmp_path / "strict")
    assert strict.get_targetinfo("a/good.bin") is not None
    with pytest.raises(tuf_errors.UnsignedMetadataError, match="shared"):
        strict.get_targetinfo("b/evil.bin")
    assert strict.get_targetinfo("a/other.bin") is not None  # back under team A: trusted again


def _download(url: str, meta: Path, out: Path, *names: str) -> subprocess.CompletedProcess[str]:
    flags = [arg for name in names for arg in ("--target-name", name)]
    return subprocess.run(
        [
            *CLI, "--metadata-dir", str(meta), "--metadata-url", f"{url}/metadata", *flags,
            "--target-base-url", f"{url}/targets", "--target-dir", str(out), "download",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_cli_downloads_every_target_name_and_refuses_the_cross_delegator_one(
    served: tuple[bytes, str], tmp_path: Path
) -> None:
    root, url = served
    meta = tmp_path / "client"
    meta.mkdir()
    (meta / "root.json").write_bytes(root)
    both = _download(url, meta, tmp_path / "both", "a/good.bin", "a/other.bin")
    assert both.returncode == 0, both.stderr
    assert sorted(p.read_bytes() for p in (tmp_path / "both").iterdir()) == sorted([GOOD, OTHER])

    crossed = _download(url, meta, tmp_path / "crossed", "a/good.bin", "b/evil.bin")
    assert crossed.returncode == 1
    assert "untrusted signature" in crossed.stderr and "shared" in crossed.stderr
    assert crossed.stderr.strip().count("\n") == 0
    assert [p.read_bytes() for p in (tmp_path / "crossed").iterdir()] == [GOOD]
