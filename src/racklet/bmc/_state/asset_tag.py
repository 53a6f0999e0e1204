"""The tray's asset tag (Chassis ``AssetTag``): the one label an operator writes, kept in the
BMC's storage (``asset-tag.txt``, 0600, written atomically) so it survives BMC restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from racklet.bmc.errors import StateError
from racklet.config import write_atomic

MAX_LENGTH = 64


class AssetTag:
    """Read once on first use, then served from memory; written through to disk."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._value: str | None = None

    async def get(self) -> str:
        if self._value is None:
            self._value = await asyncio.to_thread(self._read)
        return self._value

    def cached(self) -> str:
        """The tag as last read or written ("" before the first read)."""
        return self._value or ""

    def _read(self) -> str:
        if self._path is None:
            return ""
        try:
            return self._path.read_text().strip()[:MAX_LENGTH]
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise StateError(f"cannot read the asset tag: {exc}") from exc

    async def set(self, value: str) -> None:
        if self._path is not None:
            try:
                await asyncio.to_thread(write_atomic, self._path, value + "\n", 0o600)
            except OSError as exc:
                raise StateError(f"cannot write the asset tag: {exc}") from exc
        self._value = value
