"""The audit trail: one JSON line per state-changing request, on every side of the rack.

The controller's API, each BMC and the RMC put an :class:`AuditMiddleware` outermost around
their ASGI app. For every request that may change state (any method but GET, HEAD, OPTIONS)
it writes one line, whether the request succeeded, was refused or crashed::

    {"time": "...", "component": "bmc/unit-1", "requestId": "...", "principal": "admin",
     "role": "Administrator", "source": "127.0.0.1:50312", "verb": "ComputerSystem.Reset",
     "object": "/redfish/v1/Systems/unit-1", "outcome": "succeeded", "status": 200}

``outcome`` is ``succeeded`` (status < 400), ``refused`` (401, 403: not authenticated or not
allowed) or ``failed`` (any other error); a failure also carries the error's ``message``. The
principal is who the service authenticated (the app puts it in ``scope["state"]["principal"]``,
an object with ``username``/``name`` and ``role``); ``null`` when nobody was. The request id is
the caller's ``X-Request-Id`` when it is well formed (so a line of the RMC and the line of the
BMC it forwarded to share it), otherwise a new one; the answer carries it back.

Each service writes its own file in its own storage (``controller/audit.log``,
``bmc/<unit>/audit.log``, ``rmc/audit.log``), mode 0600, rotated by size to ``audit.log.1`` ..
``.N``. :class:`AuditLog` never blocks the event loop: a line is queued and one writer thread
appends it at once and fsyncs at most every ``SYNC_SECONDS`` (and when it goes idle), so a
burst of writes shares one fsync. If the disk cannot keep up the queue is bounded: lines
beyond it are counted, logged and noted in the file as soon as it accepts lines again, so a gap
is visible rather than silent. :func:`read_records` is what ``racklet audit`` reads.

Not here: shipping the lines anywhere (a collector can tail the files), or auditing reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from racklet.log import get_logger

log = get_logger("audit")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BYTES = 10 * 1024 * 1024
"""Size at which a file is rotated."""
BACKUPS = 5
"""Rotated files kept (``audit.log.1`` is the newest)."""
SYNC_SECONDS = 0.2
GATHER_SECONDS = 0.02
"""How long the writer lets lines gather after the first of a burst (fewer thread switches)."""
"""Longest a written line waits for its fsync (a power cut loses at most that much)."""
QUEUE_LIMIT = 10_000
"""Lines waiting for the writer thread before new ones are dropped (and counted)."""
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ERROR_BODY_LIMIT = 8192


def new_request_id() -> str:
    return os.urandom(16).hex()


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` if well formed, otherwise a new one."""
    for key, value in scope.get("headers", []):
        if key.lower() == REQUEST_ID_HEADER.encode():
            given = str(value.decode("latin-1"))
            if _REQUEST_ID.match(given):
                return given
    return new_request_id()


def _now() -> str:
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
            lines.insert(0, {"time": _now(), "component": "audit", "dropped": dropped})
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


# -- the middleware ----------------------------------------------------------------------------

Describe = Callable[[str, str], tuple[str, str]]
"""(method, path) -> (verb, object) as the service names them."""


def _principal(scope: Scope) -> tuple[str | None, str | None]:
    who = scope.get("state", {}).get("principal")
    if who is None:
        return None, None
    name = getattr(who, "username", None) or getattr(who, "name", None)
    role = getattr(who, "role", None)
    return (str(name) if name else None), (str(role) if role else None)


def error_message(body: bytes) -> str:
    """The message of a Kubernetes Status or a Redfish error body ('' if neither)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("message"), str):
        return str(data["message"])
    error = data.get("error")
    if isinstance(error, dict):
        info = error.get("@Message.ExtendedInfo")
        if isinstance(info, list) and info and isinstance(info[0], dict):
            return str(info[0].get("Message") or info[0].get("MessageId") or "")
        return str(error.get("message", ""))
    return ""


def outcome_of(status: int) -> str:
    if status < 400:
        return "succeeded"
    return "refused" if status in (401, 403) else "failed"


class AuditMiddleware:
    """Outermost ASGI layer: one audit line per state-changing request, whatever happens."""

    def __init__(self, app: ASGIApp, audit: AuditLog, component: str, describe: Describe) -> None:
        self._app = app
        self._audit = audit
        self._component = component
        self._describe = describe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["method"] in SAFE_METHODS:
            await self._app(scope, receive, self._tagging(send, request_id, None))
            return
        seen = _Seen()
        try:
            await self._app(scope, receive, self._tagging(send, request_id, seen))
        finally:
            self._write(scope, request_id, seen)

    @staticmethod
    def _tagging(send: Send, request_id: str, seen: _Seen | None) -> Send:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
                if seen is not None:
                    seen.status = int(message["status"])
            elif (
                message["type"] == "http.response.body"
                and seen is not None
                and seen.status >= 400
                and len(seen.body) < _ERROR_BODY_LIMIT
            ):
                seen.body += message.get("body", b"")[:_ERROR_BODY_LIMIT]
            await send(message)

        return tagged

    def _write(self, scope: Scope, request_id: str, seen: _Seen) -> None:
        status = seen.status or 500  # nothing sent: the app crashed before answering
        principal, role = _principal(scope)
        client = scope.get("client")
        verb, obj = self._describe(scope["method"], scope["path"])
        entry: dict[str, Any] = {
            "time": _now(),
            "component": self._component,
            "requestId": request_id,
            "principal": principal,
            "role": role,
            "source": f"{client[0]}:{client[1]}" if client else None,
            "verb": verb,
            "object": obj,
            "outcome": outcome_of(status),
            "status": status,
        }
        if status >= 400:
            entry["message"] = error_message(seen.body)[:500]
        self._audit.record(entry)


@dataclass
class _Seen:
    status: int = 0
    body: bytes = b""


def redfish_verb(method: str, path: str) -> tuple[str, str]:
    """A Redfish action is named by its action (``ComputerSystem.Reset``) on its resource;
    anything else by its method on its URI."""
    trimmed = path.rstrip("/") or "/"
    head, marker, action = trimmed.partition("/Actions/")
    if marker and action and method == "POST":
        return action, head
    return method, trimmed


# -- reading -----------------------------------------------------------------------------------


class AuditFormatError(ValueError):
    """A line of an audit file is not an audit record."""


@dataclass(frozen=True)
class AuditFilter:
    since: dt.datetime | None = None
    principal: str | None = None
    component: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        if "dropped" in record and (self.principal is not None or self.component is not None):
            return False  # a gap note names nobody
        if self.principal is not None and record.get("principal") != self.principal:
            return False
        if self.component is not None:
            component = str(record.get("component", ""))
            if component != self.component and not component.startswith(self.component + "/"):
                return False
        if self.since is not None:
            return _parse_time(record.get("time")) >= self.since
        return True


def _parse_time(text: Any) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def audit_files(state_dir: Path) -> list[Path]:
    """Every audit file of a rack's state dir, rotated ones included."""
    patterns = ("controller*/audit.log*", "bmc/*/audit.log*", "rmc/audit.log*")
    found = {p for pattern in patterns for p in state_dir.glob(pattern) if p.is_file()}
    return sorted(found)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                if not raw.endswith(b"\n"):
                    return  # a line being written right now
                raise AuditFormatError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(record, dict) or "time" not in record:
                raise AuditFormatError(f"{path}:{number}: not an audit record")
            yield record


def read_records(paths: Iterable[Path], where: AuditFilter | None = None) -> list[dict[str, Any]]:
    """The records of ``paths`` that match ``where``, oldest first (merged by time)."""
    where = where or AuditFilter()
    records = [r for path in paths for r in _lines(path) if where.matches(r)]
    return sorted(records, key=lambda r: _parse_time(r.get("time")))
