"""The default Store: one SQLite file, objects as JSON, written by one dedicated thread.

Every call runs on a single worker thread that owns the connection, so the event loop never
blocks on disk and writes are serialised. Writes are *group-committed*: those that arrive
while a transaction is being committed wait and then share the next one (``BEGIN IMMEDIATE``
… ``COMMIT``), so one fsync acknowledges many writes. Each write runs inside its own
``SAVEPOINT``: its version check and its error are its own (a ``Conflict`` rolls back that
write only), and a failure leaves nothing of it behind. WAL with ``synchronous=FULL`` makes a
committed write survive a power cut (and so a ``kill -9``: the commit is on disk before any
caller in the batch hears of it). Watches read an in-process change log fed after each commit.

Reads of one object are served from a write-through cache of rows on the event loop: since
this process is the file's only writer, the cache holds exactly what is committed, updated
as each transaction settles (before its callers hear of it, so a caller reads its own
write). A reconciler's ``get`` then costs a JSON parse, not a hop to the worker thread and
back — at 10,000 units that hop was a fifth of a reconcile. A miss reads through the worker
thread and fills the cache, unless a newer write got there first. Lists still read the file.
The cache is only right while this process is the file's one writer, so the store holds an
exclusive lock (``store.db.lock`` beside the file, ``flock``, released by the kernel however
the process ends) from construction to :meth:`close`; a second store on the same file, in this
process or another, is refused with :class:`StoreError` naming the holder. The file and its
WAL are 0600 whatever the umask. Not here: several processes writing one file (use etcd for
more than one controller).
"""

from __future__ import annotations

import asyncio
import builtins
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from racklet.api import Event, Object
from racklet.config import open_lock
from racklet.store import _rules
from racklet.store._changes import Change, ChangeLog, ChangeType
from racklet.store._protocol import LabelSelector
from racklet.store.errors import AlreadyExists, NotFound, StoreError

R = TypeVar("R", bound=Object)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_key ON events (kind, name, reason, message);
CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER);
INSERT OR IGNORE INTO counter (id, version) VALUES (1, 0);
"""


class SqliteStore:
    def __init__(self, path: Path, *, history: int = 10_000) -> None:
        self.path = Path(path)
        self._writer_lock = _hold_writer_lock(self.path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="racklet-store")
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._log = ChangeLog(limit=history)
        self._pending: list[_Row] = []  # touched only by the worker thread
        self._rows: dict[tuple[str, str], tuple[int, str | None]] = {}
        """(kind, name) -> (store revision, body; None once deleted): the loop's read cache."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[_Write] = []  # writes waiting for the next transaction
        self._queue_lock = threading.Lock()
        self._flush_queued = False  # a flush is on the worker's queue and has not started
        self.commits = 0
        """Transactions committed so far (each one fsync); fewer than writes when grouped."""

    # -- the worker thread ------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            # SQLite gives the WAL and shared-memory files the database file's mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            self._log.floor = _version(db)
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        self._loop = asyncio.get_running_loop()

        def call() -> T:
            try:
                return work(self._connection())
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Queue ``work`` for the next transaction and wait until that one is durable."""
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[T] = loop.create_future()
        with self._queue_lock:
            self._queue.append(_Write(work, future))
            start = not self._flush_queued
            self._flush_queued = True
        if start:
            self._executor.submit(self._flush, loop)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: commit every queued write in one transaction, then settle each."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
            self._flush_queued = False  # writes from now on go into the next transaction
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                outcomes = [self._apply(db, write) for write in batch]
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except Exception as exc:  # the transaction itself failed: no write in it happened
            failure = exc
            if isinstance(exc, sqlite3.Error):
                failure = StoreError(f"store {self.path}: {exc}")
                failure.__cause__ = exc
            self._pending.clear()
            loop.call_soon_threadsafe(_fail_all, batch, failure)
            return
        self.commits += 1
        loop.call_soon_threadsafe(self._settle, outcomes)

    def _apply(self, db: sqlite3.Connection, write: _Write) -> _Outcome:
        """Run one write inside its own savepoint, so its failure undoes only itself."""
        self._pending.clear()
        db.execute("SAVEPOINT one_write")
        try:
            value = write.work(db)
        except Exception as exc:
            db.execute("ROLLBACK TO one_write")
            db.execute("RELEASE one_write")
            self._pending.clear()
            if isinstance(exc, sqlite3.Error):
                translated = StoreError(f"store {self.path}: {exc}")
                translated.__cause__ = exc
                return _Outcome(write.future, None, translated, [])
            return _Outcome(write.future, None, exc, [])
        db.execute("RELEASE one_write")
        rows, self._pending = self._pending, []
        return _Outcome(write.future, value, None, rows)

    def _settle(self, outcomes: builtins.list[_Outcome]) -> None:
        """Event loop: cache and publish each write's rows, then answer its caller, in commit
        order."""
        for outcome in outcomes:
            for row in outcome.changes:
                self._remember(row.change.kind, row.name, row.change.revision, row.body)
                self._log.publish(row.change)
            if outcome.future.done():  # the caller gave up waiting; the write still happened
                continue
            if outcome.error is not None:
                outcome.future.set_exception(outcome.error)
            else:
                outcome.future.set_result(outcome.value)

    # -- objects ----------------------------------------------------------------------------

    def _changed(self, type_: ChangeType, obj: Object, body: str) -> None:
        """Queue the change for watchers (their own copy, parsed from the row just written)
        and for the read cache (the row itself; none once deleted)."""
        revision = int(obj.metadata.resource_version)
        change = Change(type_, obj.kind, revision, type(obj).model_validate_json(body))
        row = None if type_ == "DELETED" else body
        self._pending.append(_Row(change, obj.metadata.name, row))

    def _remember(self, kind: str, name: str, revision: int, body: str | None) -> None:
        """Event loop: keep the newest row of (kind, name) seen at ``revision``."""
        known = self._rows.get((kind, name))
        if known is None or known[0] < revision:
            self._rows[(kind, name)] = (revision, body)

    async def get(self, kind: type[R], name: str) -> R:
        kind_name = _rules.kind_name(kind)
        if self._closed:
            raise StoreError("the store is closed")
        cached = self._rows.get((kind_name, name))
        if cached is None:
            body, revision = await self._run(lambda db: (_row(db, kind_name, name), _version(db)))
            if body is None:
                raise NotFound(kind_name, name)  # a miss is not kept: names asked for are many
            self._remember(kind_name, name, revision, body)
            cached = self._rows[(kind_name, name)]
        return _load(kind, cached[1], name)

    async def list(self, kind: type[R], label_selector: LabelSelector = None) -> builtins.list[R]:
        return (await self.list_with_revision(kind, label_selector))[0]

    async def list_with_revision(
        self, kind: type[R], label_selector: LabelSelector = None
    ) -> tuple[builtins.list[R], int]:
        kind_name = _rules.kind_name(kind)

        def work(db: sqlite3.Connection) -> tuple[builtins.list[R], int]:
            rows = db.execute(
                "SELECT body FROM objects WHERE kind = ? ORDER BY name", (kind_name,)
            ).fetchall()
            objs = [_parse(kind, body) for (body,) in rows]
            chosen = [o for o in objs if _rules.matches(o.metadata.labels, label_selector)]
            return chosen, _version(db)

        return await self._run(work)

    async def create(self, obj: R) -> R:
        kind_name = _rules.kind_name(type(obj))

        def work(db: sqlite3.Connection) -> R:
            if _row(db, kind_name, obj.metadata.name) is not None:
                raise AlreadyExists(kind_name, obj.metadata.name)
            stored = _rules.for_create(obj, _bump(db))
            body = stored.model_dump_json(by_alias=True)
            db.execute(
                "INSERT INTO objects (kind, name, body) VALUES (?, ?, ?)",
                (kind_name, obj.metadata.name, body),
            )
            self._changed("ADDED", stored, body)
            return stored

        return await self._write(work)

    async def _replace(self, obj: R, rule: Callable[[R, R, int], R]) -> R:
        def work(db: sqlite3.Connection) -> R:
            current = _load(type(obj), _row(db, obj.kind, obj.metadata.name), obj.metadata.name)
            _rules.check_version(current, obj)
            stored = rule(current, obj, _bump(db))
            body = stored.model_dump_json(by_alias=True)
            db.execute(
                "UPDATE objects SET body = ? WHERE kind = ? AND name = ?",
                (body, obj.kind, obj.metadata.name),
            )
            self._changed("MODIFIED", stored, body)
            return stored

        return await self._write(work)

    async def update(self, obj: R) -> R:
        return await self._replace(obj, _rules.for_update)

    async def update_status(self, obj: R) -> R:
        return await self._replace(obj, _rules.for_status)

    async def delete(self, kind: type[R], name: str, resource_version: str = "") -> R:
        kind_name = _rules.kind_name(kind)

        def work(db: sqlite3.Connection) -> R:
            current = _load(kind, _row(db, kind_name, name), name)
            if resource_version:
                meta = current.metadata.model_copy(update={"resource_version": resource_version})
                _rules.check_version(current, current.model_copy(update={"metadata": meta}))
            db.execute("DELETE FROM objects WHERE kind = ? AND name = ?", (kind_name, name))
            gone = _rules.for_delete(current, _bump(db))
            self._changed("DELETED", gone, gone.model_dump_json(by_alias=True))
            return gone

        return await self._write(work)

    async def watch(self, kind: type[R], revision: int) -> AsyncIterator[Change]:
        await self._run(lambda db: None)  # open the file, so the log knows its floor
        async for change in self._log.follow(_rules.kind_name(kind), revision):
            yield change

    # -- events -----------------------------------------------------------------------------

    async def record_event(self, event: Event) -> Event:
        key = _rules.event_key(event)

        def work(db: sqlite3.Connection) -> Event:
            row = db.execute(
                "SELECT seq, body FROM events WHERE kind = ? AND name = ? AND reason = ? "
                "AND message = ? ORDER BY seq DESC LIMIT 1",
                key,
            ).fetchone()
            if row is not None:
                stored = _rules.repeated_event(Event.model_validate_json(row[1]), event)
                db.execute("DELETE FROM events WHERE seq = ?", (row[0],))
            else:
                stored = _rules.new_event(event)
            db.execute(
                "INSERT INTO events (kind, name, reason, message, body) VALUES (?, ?, ?, ?, ?)",
                (*key, stored.model_dump_json(by_alias=True)),
            )
            db.execute(
                "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?",
                (_rules.EVENT_LIMIT,),
            )
            return stored

        return await self._write(work)

    async def events(
        self, name: str | None = None, limit: int = 100, kind: str | None = None
    ) -> builtins.list[Event]:
        def work(db: sqlite3.Connection) -> builtins.list[Event]:
            rows = db.execute(
                "SELECT body FROM events WHERE (?1 IS NULL OR name = ?1) "
                "AND (?2 IS NULL OR kind = ?2) ORDER BY seq DESC LIMIT ?3",
                (name, kind, limit),
            ).fetchall()
            return [Event.model_validate_json(body) for (body,) in reversed(rows)]

        return await self._run(work)

    async def close(self) -> None:
        """Finish queued writes, close the connection and stop the worker; safe to call twice."""
        if self._closed:
            return
        self._closed = True  # new calls are refused; those already queued still run

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._log.close()
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        os.close(self._writer_lock)  # only now may another writer open the file


def _hold_writer_lock(path: Path) -> int:
    """Take the store's one-writer lock (``<store>.lock``) or refuse with one clear line.

    Returns a bare descriptor of the locked file: a store a test (or a crash) never closes
    keeps the lock until the process ends, without a file object warning when collected.
    """
    lock_path = path.with_name(f"{path.name}.lock")
    try:
        handle = open_lock(lock_path)
    except OSError as exc:
        raise StoreError(f"cannot open {lock_path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read().decode(errors="replace").strip() or "unknown"
        handle.close()
        raise StoreError(
            f"{path} is already in use by another controller (pid {holder}); "
            "one controller writes a SQLite store: stop that one first"
        ) from None
    except BaseException:
        handle.close()
        raise
    with handle:
        handle.truncate(0)
        handle.write(str(os.getpid()).encode())
        handle.flush()
        return os.dup(handle.fileno())  # the same open file, so the same lock


@dataclass(frozen=True)
class _Write:
    work: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


@dataclass(frozen=True)
class _Outcome:
    future: asyncio.Future[Any]
    value: Any
    error: Exception | None
    changes: builtins.list[_Row]


@dataclass(frozen=True)
class _Row:
    """One object a write changed: the watchers' change and the row for the read cache."""

    change: Change
    name: str
    body: str | None


def _fail_all(batch: builtins.list[_Write], error: Exception) -> None:
    for write in batch:
        if not write.future.done():
            write.future.set_exception(error)


def _row(db: sqlite3.Connection, kind: str, name: str) -> str | None:
    row = db.execute(
        "SELECT body FROM objects WHERE kind = ? AND name = ?", (kind, name)
    ).fetchone()
    return None if row is None else str(row[0])


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT version FROM counter WHERE id = 1").fetchone()[0])


def _bump(db: sqlite3.Connection) -> int:
    db.execute("UPDATE counter SET version = version + 1 WHERE id = 1")
    return _version(db)


def _parse(kind: type[R], body: str) -> R:
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        raise StoreError(f"a stored {_rules.kind_name(kind)} does not validate: {exc}") from exc


def _load(kind: type[R], body: str | None, name: str) -> R:
    if body is None:
        raise NotFound(_rules.kind_name(kind), name)
    return _parse(kind, body)
