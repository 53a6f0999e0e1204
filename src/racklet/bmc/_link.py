"""The BMC's end of the backplane link: what a unit may ask of its BMC.

The trust bundle and the unit's identity are read from the BMC's state dir on every
request (off the event loop), so a rotation on disk is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from racklet.bmc._boot import BootStatus
from racklet.bmc.errors import BmcError, StateError
from racklet.link import serve_link
from racklet.log import ContextLogger

TRUST_FIELDS = ("bootServer", "tufRoot", "channel", "caBundle")


def _read_trust(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateError(f"the BMC has no usable trust bundle: {exc}") from exc
    if not isinstance(data, dict) or any(not isinstance(data.get(f), str) for f in TRUST_FIELDS):
        raise StateError(f"{path.name} lacks one of {', '.join(TRUST_FIELDS)}")
    return {field: data[field] for field in TRUST_FIELDS}


def _read_identity(state_dir: Path) -> tuple[str, str]:
    try:
        key = (state_dir / "identity.key").read_text()
        cert = (state_dir / "identity.crt").read_text()
    except OSError as exc:
        raise StateError(f"the BMC holds no identity for this unit: {exc}") from exc
    return key, cert


class LinkService:
    """Handlers for the link operations of one unit."""

    def __init__(self, unit: str, state_dir: Path, boot: BootStatus, log: ContextLogger) -> None:
        self._unit = unit
        self._state_dir = state_dir
        self._boot = boot
        self._log = log.bind(request="link")

    async def trust(self, request: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(_read_trust, self._state_dir / "trust.json")

    async def identity(self, request: dict[str, Any]) -> dict[str, Any]:
        key, cert = await asyncio.to_thread(_read_identity, self._state_dir)
        self._log.info("identity handed to the unit")
        return {"name": self._unit, "key": key, "cert": cert}

    async def progress(self, request: dict[str, Any]) -> dict[str, Any]:
        state, message = request.get("state"), request.get("message")
        if not isinstance(state, str):
            raise BmcError("progress needs a 'state' string")
        if message is not None and not isinstance(message, str):
            raise BmcError("progress 'message' must be a string")
        self._boot.progress(state, message)
        self._log.info(f"boot progress {state}" + (f": {message}" if message else ""))
        return {}

    async def failed(self, request: dict[str, Any]) -> dict[str, Any]:
        reason = request.get("reason")
        if not isinstance(reason, str):
            raise BmcError("failed needs a 'reason' string")
        self._boot.failed(reason)
        self._log.warning(f"boot failed: {reason}")
        return {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection the unit opened."""
        await serve_link(
            reader,
            writer,
            {
                "trust": self.trust,
                "identity": self.identity,
                "progress": self.progress,
                "failed": self.failed,
            },
        )
