"""Disk for the bootstrap client: read the verified payload's agent config, install it atomically.

Only ever handed files TUF already verified (``_tuf_client``); nothing here decides trust.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from pathlib import Path

from racklet.boot._manifest import PAYLOAD_NAME, AgentConfig, parse_agent_config
from racklet.boot.errors import PayloadError

AGENT_CONFIG = "agent.json"
MANIFEST_NAME = "manifest.json"


def read_agent_config(payload: Path, limit: int) -> AgentConfig:
    """Find ``agent.json`` in a verified payload (a tar archive) and parse it."""
    try:
        with tarfile.open(payload, "r:") as archive:
            for member in archive:
                if member.name.removeprefix("./") != AGENT_CONFIG:
                    continue
                if not member.isfile() or member.size > limit:
                    raise PayloadError(f"{AGENT_CONFIG} in the payload is not a file of ≤{limit} B")
                stream = archive.extractfile(member)
                if stream is None:
                    break
                return parse_agent_config(stream.read())
    except (tarfile.TarError, OSError) as exc:
        raise PayloadError(f"payload is not a readable tar archive: {exc}") from exc
    raise PayloadError(f"payload has no {AGENT_CONFIG}")


def install(boot_dir: Path, verified: Path, manifest_bytes: bytes) -> None:
    """Make a verified payload the bootable one: payload, then its manifest, each atomic."""
    os.replace(verified, boot_dir / PAYLOAD_NAME)
    fd, tmp = tempfile.mkstemp(dir=boot_dir, prefix=f".{MANIFEST_NAME}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(manifest_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, boot_dir / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(boot_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
