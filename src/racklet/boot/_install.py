"""Read the agent config (``agent.json``) out of a verified payload.

Only ever handed files TUF already verified (``_tuf_client``); nothing here decides trust.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from racklet.boot._manifest import AgentConfig, parse_agent_config
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
