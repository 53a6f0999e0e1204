"""One small setting an operator writes, kept in a file of the BMC's storage: read once on
first use (off the event loop), written atomically and 0600, so it survives BMC restarts.

The asset tag and the management port's network settings are kept this way; what a value
means and whether it is valid is the caller's, a file only holds text.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from racklet.bmc.errors import StateError
from racklet.config import write_atomic


class StoredFile:
    """The text of one setting's file (``None``: no file yet, or a BMC without storage)."""

    def __init__(self, path: Path | None, what: str) -> None:
        self.path = path
        self.what = what

    async def read(self) -> str | None:
        return await asyncio.to_thread(self._read)

    def _read(self) -> str | None:
        if self.path is None:
            return None
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read {self.what}: {exc}") from exc

    async def write(self, text: str) -> None:
        if self.path is None:
            return
        try:
            await asyncio.to_thread(write_atomic, self.path, text, 0o600)
        except OSError as exc:
            raise StateError(f"cannot write {self.what}: {exc}") from exc
