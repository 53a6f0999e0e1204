"""Where resources live: the Store protocol, SQLite (default) and an in-memory fake."""

from racklet.store._memory import MemoryStore
from racklet.store._protocol import Store
from racklet.store._sqlite import SqliteStore
from racklet.store.errors import AlreadyExists, Conflict, NotFound, StoreError

__all__ = [
    "AlreadyExists",
    "Conflict",
    "MemoryStore",
    "NotFound",
    "SqliteStore",
    "Store",
    "StoreError",
]
