"""Where resources live: the Store protocol, SQLite (default), etcd (HA) and an in-memory fake."""

from racklet.store._changes import Change, ChangeType
from racklet.store._etcd import EtcdStore, Fence, Guard
from racklet.store._memory import MemoryStore
from racklet.store._protocol import LabelSelector, Store
from racklet.store._sqlite import SqliteStore
from racklet.store.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    Fenced,
    NotFound,
    StoreError,
    Unavailable,
)

__all__ = [
    "AlreadyExists",
    "Change",
    "ChangeType",
    "Conflict",
    "EtcdStore",
    "Expired",
    "Fence",
    "Fenced",
    "Guard",
    "LabelSelector",
    "MemoryStore",
    "NotFound",
    "SqliteStore",
    "Store",
    "StoreError",
    "Unavailable",
]
