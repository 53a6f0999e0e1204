"""The tray's asset tag (Chassis ``AssetTag``): the one label an operator writes, kept in the
BMC's storage (``asset-tag.txt``, through :class:`StoredFile`) so it survives BMC restarts."""

from __future__ import annotations

from pathlib import Path

from racklet.bmc._state.stored import StoredFile

MAX_LENGTH = 64


class AssetTag:
    """Read once on first use, then served from memory; written through to disk."""

    def __init__(self, path: Path | None) -> None:
        self._file = StoredFile(path, "the asset tag")
        self._value: str | None = None

    async def get(self) -> str:
        if self._value is None:
            self._value = ((await self._file.read()) or "").strip()[:MAX_LENGTH]
        return self._value

    def cached(self) -> str:
        """The tag as last read or written ("" before the first read)."""
        return self._value or ""

    async def set(self, value: str) -> None:
        await self._file.write(value + "\n")
        self._value = value
