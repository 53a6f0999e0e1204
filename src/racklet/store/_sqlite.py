"""The default Store: one SQLite file, objects as JSON, written by one dedicated thread.

Every call runs on a single worker thread that owns the connection, so the event loop never
blocks on disk and writes are serialised. Each write is one transaction (``BEGIN IMMEDIATE``
… ``COMMIT``), so a failure leaves nothing half-written; WAL with ``synchronous=FULL`` makes a
committed write survive a power cut. Not here: watches, multi-process writers.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from racklet.api import KINDS, ComputeUnit, Event, Rack
from racklet.store import _rules
from racklet.store.errors import AlreadyExists, NotFound, StoreError

R = TypeVar("R", Rack, ComputeUnit)
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
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="racklet-store")
        self._db: sqlite3.Connection | None = None
        self._closed = False

    # -- the worker thread ------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")

        def call() -> T:
            try:
                return work(self._connection())
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._run(transaction)

    # -- objects ----------------------------------------------------------------------------

    async def get(self, kind: type[R], name: str) -> R:
        kind_name = _kind(kind)
        return await self._run(lambda db: _load(kind, _row(db, kind_name, name), name))

    async def list(
        self, kind: type[R], label_selector: Mapping[str, str] | None = None
    ) -> builtins.list[R]:
        kind_name = _kind(kind)

        def work(db: sqlite3.Connection) -> builtins.list[R]:
            rows = db.execute(
                "SELECT body FROM objects WHERE kind = ? ORDER BY name", (kind_name,)
            ).fetchall()
            objs = [_parse(kind, body) for (body,) in rows]
            return [o for o in objs if _rules.matches(o.metadata.labels, label_selector)]

        return await self._run(work)

    async def create(self, obj: R) -> R:
        def work(db: sqlite3.Connection) -> R:
            if _row(db, obj.kind, obj.metadata.name) is not None:
                raise AlreadyExists(obj.kind, obj.metadata.name)
            stored = _rules.for_create(obj, _bump(db))
            db.execute(
                "INSERT INTO objects (kind, name, body) VALUES (?, ?, ?)",
                (obj.kind, obj.metadata.name, stored.model_dump_json(by_alias=True)),
            )
            return stored

        return await self._write(work)

    async def _replace(self, obj: R, rule: Callable[[R, R, int], R]) -> R:
        def work(db: sqlite3.Connection) -> R:
            current = _load(type(obj), _row(db, obj.kind, obj.metadata.name), obj.metadata.name)
            _rules.check_version(current, obj)
            stored = rule(current, obj, _bump(db))
            db.execute(
                "UPDATE objects SET body = ? WHERE kind = ? AND name = ?",
                (stored.model_dump_json(by_alias=True), obj.kind, obj.metadata.name),
            )
            return stored

        return await self._write(work)

    async def update(self, obj: R) -> R:
        return await self._replace(obj, _rules.for_update)

    async def update_status(self, obj: R) -> R:
        return await self._replace(obj, _rules.for_status)

    async def delete(self, kind: type[R], name: str) -> None:
        kind_name = _kind(kind)

        def work(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "DELETE FROM objects WHERE kind = ? AND name = ?", (kind_name, name)
            )
            if cursor.rowcount == 0:
                raise NotFound(kind_name, name)

        await self._write(work)

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

    async def events(self, name: str | None = None, limit: int = 100) -> builtins.list[Event]:
        def work(db: sqlite3.Connection) -> builtins.list[Event]:
            if name is None:
                rows = db.execute(
                    "SELECT body FROM events ORDER BY seq DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT body FROM events WHERE name = ? ORDER BY seq DESC LIMIT ?",
                    (name, limit),
                ).fetchall()
            return [Event.model_validate_json(body) for (body,) in reversed(rows)]

        return await self._run(work)

    async def close(self) -> None:
        """Close the connection and stop the worker thread; safe to call twice."""
        if self._closed:
            return

        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(shut)
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)


def _kind(kind: type[Any]) -> str:
    name = str(kind.model_fields["kind"].default)
    if name not in KINDS:
        raise StoreError(f"the store does not keep objects of kind {name!r}")
    return name


def _row(db: sqlite3.Connection, kind: str, name: str) -> str | None:
    row = db.execute(
        "SELECT body FROM objects WHERE kind = ? AND name = ?", (kind, name)
    ).fetchone()
    return None if row is None else str(row[0])


def _bump(db: sqlite3.Connection) -> int:
    db.execute("UPDATE counter SET version = version + 1 WHERE id = 1")
    return int(db.execute("SELECT version FROM counter WHERE id = 1").fetchone()[0])


def _parse(kind: type[R], body: str) -> R:
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        raise StoreError(f"a stored {_kind(kind)} does not validate: {exc}") from exc


def _load(kind: type[R], body: str | None, name: str) -> R:
    if body is None:
        raise NotFound(_kind(kind), name)
    return _parse(kind, body)
