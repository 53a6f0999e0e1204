"""The conformance-suite command line (``python -m racklet.boot.tuf_client``) against a real
repository served over plain HTTP on 127.0.0.1, the way the conformance suite serves one.

(``tuf-conformance`` is not on PyPI, so the suite itself cannot run here; these tests drive
the same three commands and exit codes it uses.)
"""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from racklet.boot import TufRepository

CLI = [sys.executable, "-m", "racklet.boot.tuf_client"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TufRepository, str]]:
    repo = TufRepository.create(tmp_path / "boot")
    repo.publish("stable", "racklet-os", "1.0.0", {"payload.bin": b"conformance" * 50})
    handler = functools.partial(_Quiet, directory=str(repo.repo_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield repo, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_init_refresh_download(served: tuple[TufRepository, str], tmp_path: Path) -> None:
    repo, url = served
    root = tmp_path / "trusted-root.json"
    root.write_bytes(repo.root_bytes())
    meta, targets = tmp_path / "client", tmp_path / "downloads"
    meta.mkdir()
    assert _run("--metadata-dir", meta, "init", root).returncode == 0
    assert json.loads((meta / "root.json").read_text())["signed"]["_type"] == "root"
    refresh = _run("--metadata-dir", meta, "--metadata-url", f"{url}/metadata", "refresh")
    assert refresh.returncode == 0, refresh.stderr
    assert {"timestamp.json", "snapshot.json", "targets.json"} <= {p.name for p in meta.iterdir()}
    download = _run(
        "--metadata-dir", meta, "--metadata-url", f"{url}/metadata",
        "--target-name", "stable/racklet-os/1.0.0/payload.bin",
        "--target-base-url", f"{url}/targets", "--target-dir", targets, "download",
    )  # fmt: skip
    assert download.returncode == 0, download.stderr
    (fetched,) = targets.iterdir()
    assert fetched.read_bytes() == b"conformance" * 50


def test_failures_exit_1_with_one_line(served: tuple[TufRepository, str], tmp_path: Path) -> None:
    repo, url = served
    root = tmp_path / "trusted-root.json"
    root.write_bytes(repo.root_bytes())
    meta = tmp_path / "client"
    meta.mkdir()
    assert _run("--metadata-dir", meta, "init", root).returncode == 0
    missing = _run(
        "--metadata-dir", meta, "--metadata-url", f"{url}/metadata",
        "--target-name", "stable/nothing", "--target-base-url", f"{url}/targets",
        "--target-dir", tmp_path / "t", "download",
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "not in the repository" in missing.stderr
    ts = repo.metadata_dir / "timestamp.json"
    document = json.loads(ts.read_text())
    document["signed"]["version"] += 5
    ts.write_text(json.dumps(document))
    tampered = _run("--metadata-dir", meta, "--metadata-url", f"{url}/metadata", "refresh")
    assert tampered.returncode == 1
    assert "untrusted signature" in tampered.stderr and "Traceback" not in tampered.stderr
    no_root = _run("--metadata-dir", tmp_path / "empty", "--metadata-url", url, "refresh")
    assert no_root.returncode == 1 and "Traceback" not in no_root.stderr
