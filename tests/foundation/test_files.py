"""The one atomic-write helper: exact modes whatever the umask, all or nothing on disk."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from racklet.config import atomic_file, make_dir, open_lock, write_atomic, write_private


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask a user can have: whatever is not set explicitly is 0777/0666."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_modes_are_explicit_under_umask_000(tmp_path: Path) -> None:
    write_private(tmp_path / "a" / "b" / "secret", "s")
    write_atomic(tmp_path / "a" / "anchor.crt", b"c")
    with open_lock(tmp_path / "c" / "x.lock"):
        pass
    assert _mode(tmp_path / "a") == 0o700
    assert _mode(tmp_path / "a" / "b") == 0o700
    assert _mode(tmp_path / "a" / "b" / "secret") == 0o600
    assert _mode(tmp_path / "a" / "anchor.crt") == 0o644
    assert _mode(tmp_path / "c") == 0o700
    assert _mode(tmp_path / "c" / "x.lock") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_make_dir_leaves_existing_parents_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    make_dir(tmp_path / "x" / "y", 0o750)
    assert _mode(tmp_path) == 0o755
    assert _mode(tmp_path / "x") == 0o750
    assert _mode(tmp_path / "x" / "y") == 0o750


def test_a_failed_write_keeps_the_old_content_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_file(target) as out:
        out.write(b"half of the new")
        raise RuntimeError("power cut")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_name_can_be_chosen_after_the_content(tmp_path: Path) -> None:
    """A content-addressed file is named from its hash, known only once written; a tool that
    recreates the temp file by name still gets the mode and the durable rename."""
    with atomic_file(tmp_path / "payload", mode=0o640) as out:
        out.temp.unlink()
        out.temp.write_bytes(b"written by a tool")
        out.target = tmp_path / "abc.payload"
    assert (tmp_path / "abc.payload").read_bytes() == b"written by a tool"
    assert _mode(tmp_path / "abc.payload") == 0o640
    assert not (tmp_path / "payload").exists()


def test_a_scratch_write_skips_the_fsyncs_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VM's kernel and initrd are scratch (a power cut takes the VM; the agent's next start
    removes them): written without fsync, which cost 0.1-0.2 s on a VM's start path, yet
    still 0600 and complete under their name, whatever the umask."""

    def no_fsync(fd: int) -> None:
        raise AssertionError("fsync on a scratch write")

    monkeypatch.setattr(os, "fsync", no_fsync)
    old = os.umask(0)
    try:
        write_private(tmp_path / "vm" / "initrd.img", b"initrd", durable=False)
    finally:
        os.umask(old)
    written = tmp_path / "vm" / "initrd.img"
    assert written.read_bytes() == b"initrd"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [p.name for p in written.parent.iterdir()] == ["initrd.img"]
    with pytest.raises(AssertionError, match="fsync"):
        write_private(tmp_path / "secret", b"x")  # the default stays durable
