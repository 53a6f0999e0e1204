"""Errors of the object store.

::

    RackletError
    └── StoreError         the store itself failed (disk, corruption, closed)
        ├── NotFound       no object of that kind and name           (HTTP 404)
        ├── AlreadyExists  create of a name that is taken            (HTTP 409)
        ├── Conflict       write based on a stale resourceVersion    (HTTP 409)
        ├── Expired        watch from a revision no longer kept      (HTTP 410)
        ├── Unavailable    the backend cannot be reached (etcd down) (HTTP 503)
        └── Fenced         a leader-only write from a controller that lost the lead
"""

from __future__ import annotations

from racklet.errors import RackletError


class StoreError(RackletError):
    """The store could not do what was asked."""


class NotFound(StoreError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f'{kind.lower()} "{name}" not found')
        self.kind, self.name = kind, name


class AlreadyExists(StoreError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f'{kind.lower()} "{name}" already exists')
        self.kind, self.name = kind, name


class Conflict(StoreError):
    def __init__(self, kind: str, name: str, expected: str, actual: str) -> None:
        super().__init__(
            f'{kind.lower()} "{name}" was modified (resourceVersion {actual}, '
            f"not {expected or 'unset'}); read it again and retry"
        )
        self.kind, self.name = kind, name


class Expired(StoreError):
    """A watch asked for changes older than the history the store keeps (HTTP 410)."""

    def __init__(self, revision: int, oldest: int) -> None:
        super().__init__(
            f"resourceVersion {revision} is too old (history starts after {oldest}); "
            "list again and watch from the list's resourceVersion"
        )
        self.revision, self.oldest = revision, oldest


class Unavailable(StoreError):
    """The store's backend cannot be reached (e.g. etcd is down); retry later (HTTP 503)."""


class Fenced(StoreError):
    """A fenced write was refused: this controller is no longer the leader it was when it
    decided to act, so the action must not happen (another controller now owns it)."""
