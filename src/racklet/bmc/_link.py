"""The BMC's end of the backplane link: what a unit may ask of its BMC.

The trust bundle and the unit's identity are read from the BMC's state dir on every
request (off the event loop), so a rotation on disk is picked up without a restart. The A/B
operations (``ab``, ``tryboot``, ``tryboot-clear``, ``commit``) go to :class:`AbState`, one at
a time; ``restart`` lets a unit whose trial failed its health check ask for a reset.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from racklet.bmc._state.ab import AbRecord, AbState
from racklet.bmc._state.boot import BootStatus
from racklet.bmc.errors import BmcError, StateError
from racklet.hw import Clock
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
    trust = {field: data[field] for field in TRUST_FIELDS}
    servers = data.get("bootServers")  # optional: every controller of an HA rack
    if isinstance(servers, list) and all(isinstance(s, str) for s in servers):
        trust["bootServers"] = servers
    if isinstance(targets := data.get("targetsUrl"), str):  # optional: the bulk-target server
        trust["targetsUrl"] = targets
    return trust


def _read_identity(state_dir: Path) -> tuple[str, str]:
    try:
        key = (state_dir / "identity.key").read_text()
        cert = (state_dir / "identity.crt").read_text()
    except OSError as exc:
        raise StateError(f"the BMC holds no identity for this unit: {exc}") from exc
    return key, cert


class LinkService:
    """Handlers for the link operations of one unit."""

    def __init__(
        self,
        unit: str,
        state_dir: Path,
        boot: BootStatus,
        log: ContextLogger,
        *,
        clock: Clock | None = None,
        restart: Callable[[], Awaitable[None]] | None = None,
        identity: Callable[[], Awaitable[tuple[str, str]]] | None = None,
    ) -> None:
        self._unit = unit
        self._state_dir = state_dir
        self._boot = boot
        self._log = log.bind(request="link")
        self.ab: AbState | None = AbState(state_dir, clock) if clock is not None else None
        self._ab_lock = asyncio.Lock()
        self._restart = restart
        self._identity = identity  # the BMC's certificate store; else the state-dir files

    async def _with_ab(self, action: Callable[[AbState], dict[str, Any]]) -> dict[str, Any]:
        ab = self.ab
        if ab is None:
            raise BmcError("this BMC keeps no A/B state")
        async with self._ab_lock:
            return await asyncio.to_thread(action, ab)

    async def ab_record(self) -> AbRecord:
        """The A/B record as it is now (for the Update Service, which writes the unit's slots)."""
        return await self._with_record(lambda ab: ab.load())

    async def _with_record(self, action: Callable[[AbState], AbRecord]) -> AbRecord:
        ab = self.ab
        if ab is None:
            raise BmcError("this BMC keeps no A/B state")
        async with self._ab_lock:
            return await asyncio.to_thread(action, ab)

    async def ab_state(self, request: dict[str, Any]) -> dict[str, Any]:
        consume = request.get("consume", False)
        if not isinstance(consume, bool):
            raise BmcError("ab 'consume' must be a boolean")
        answer = await self._with_ab(lambda ab: ab.read(consume))
        if consume:
            self._log.info(f"boot reads A/B state: mode {answer['mode']}")
        return answer

    async def tryboot(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = await self._with_ab(lambda ab: ab.set_tryboot(request))
        self._log.info(f"try-boot set: slot {request['slot']} version {request['version']}")
        return answer

    async def tryboot_clear(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._with_ab(lambda ab: ab.clear_tryboot())

    async def commit(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = await self._with_ab(lambda ab: ab.commit(request))
        self._log.info(f"committed slot {request['slot']} version {request['version']}")
        return answer

    async def restart(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._restart is None:
            raise BmcError("this BMC cannot restart its unit")
        reason = request.get("reason")
        self._log.warning(f"unit asked for a restart: {reason}")
        await self._restart()
        return {}

    async def trust(self, request: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(_read_trust, self._state_dir / "trust.json")

    async def identity(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._identity is not None:
            key, cert = await self._identity()
        else:
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
                "ab": self.ab_state,
                "tryboot": self.tryboot,
                "tryboot-clear": self.tryboot_clear,
                "commit": self.commit,
                "restart": self.restart,
            },
        )
