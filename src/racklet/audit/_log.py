"""The audit file writer: JSON lines from one thread, 0600, rotated by size.

:meth:`AuditLog.record` only queues (safe on the event loop); one writer thread per log
appends, fsyncs at most every ``SYNC_SECONDS`` (and when it goes idle) and rotates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from racklet.log import get_logger

log = get_logger("audit")

MAX_BYTES = 10 * 1024 * 1024
"""Size at which a file is rotated."""
BACKUPS = 5
"""Rotated files kept (``audit.log.1`` is the newest)."""
SYNC_SECONDS = 0.2
"""Longest a written line waits for its fsync (a power cut loses at most that much)."""
GATHER_SECONDS = 0.02
"""How long the writer lets lines gather after the first of a burst (fewer thread switches)."""
QUEUE_LIMIT = 10_000
"""Lines waiting for the writer thread before new ones are dropped (and counted)."""


def now() -> str:
    """An audit line's ``time``: UTC, milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends JSON lines to ``path`` from one writer thread; rotated at ``max_bytes``.

    :meth:`record` only queues (safe on the event loop); :meth:`close` writes what is queued
    and stops the thread (blocking: call it through ``asyncio.to_thread`` or use
    :meth:`aclose`). A record after close starts the thread again.
    """

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        if max_bytes < 1 or backups < 1:
            raise ValueError("an audit log needs max_bytes >= 1 and backups >= 1")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._limit = QUEUE_LIMIT
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._dropped = 0
        self._handle: int | None = None  # the writer thread's alone
        self._size = 0
        self.written = 0
        """Lines written so far (tests and benchmarks wait on it)."""

    def record(self, entry: dict[str, Any]) -> None:
        """Queue one line (a fresh dict the caller no longer touches)."""
        if self._thread is None:
            self._start()
        if self._queue.qsize() < self._limit or "_flush" in entry:
            self._queue.put(entry)
        else:
            with self._lock:
                self._dropped += 1
                first = self._dropped == 1
            if first:
                log.error(f"audit log {self.path} cannot keep up: dropping lines")

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"audit:{self.path}", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every line queued so far is on disk (blocking; for tests and close)."""
        done = threading.Event()
        self.record({"_flush": done})
        done.wait(timeout)

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """Write batches; fsync at most every ``SYNC_SECONDS``, and when the queue goes idle."""
        dirty, synced = False, 0.0
        try:
            while True:
                try:
                    first = self._queue.get(timeout=SYNC_SECONDS if dirty else None)
                except queue.Empty:
                    self._sync()
                    dirty, synced = False, time.monotonic()
                    continue
                if first is not None and "_flush" not in first:
                    time.sleep(GATHER_SECONDS)  # let a burst gather: one wake-up, not one each
                batch = [first]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                flushes = [e["_flush"] for e in batch if e is not None and "_flush" in e]
                dirty |= self._write([e for e in batch if e is not None and "_flush" not in e])
                stop = None in batch
                if dirty and (flushes or stop or time.monotonic() - synced >= SYNC_SECONDS):
                    self._sync()
                    dirty, synced = False, time.monotonic()
                for done in flushes:
                    done.set()
                if stop:
                    return
        finally:
            if self._handle is not None:
                os.close(self._handle)
                self._handle = None

    def _write(self, lines: list[dict[str, Any]]) -> bool:
        """Append ``lines`` (and a note of lines dropped before them); True if any was."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            lines.insert(0, {"time": now(), "component": "audit", "dropped": dropped})
        try:
            for entry in lines:
                data = json.dumps(entry, separators=(",", ":"), default=str).encode() + b"\n"
                if self._handle is not None and self._size + len(data) > self.max_bytes:
                    os.close(self._handle)
                    self._handle = None
                    self._rotate()
                if self._handle is None:
                    self._handle = self._open()
                    self._size = os.fstat(self._handle).st_size
                os.write(self._handle, data)
                self._size += len(data)
                self.written += 1
        except OSError as exc:
            log.error(f"cannot write the audit log {self.path}: {exc}")
            self._close_handle()
        return bool(lines)

    def _sync(self) -> None:
        if self._handle is None:
            return
        try:
            os.fsync(self._handle)
        except OSError as exc:
            log.error(f"cannot write the audit log {self.path}: {exc}")
            self._close_handle()

    def _close_handle(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                os.close(self._handle)
            self._handle = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(handle, 0o600)  # whatever the umask, and for a file made by an older racklet
        return handle

    def _rotate(self) -> None:
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
