"""Errors of the object store.

::

    RackletError
    └── StoreError         the store itself failed (disk, corruption, closed)
        ├── NotFound       no object of that kind and name           (HTTP 404)
        ├── AlreadyExists  create of a name that is taken            (HTTP 409)
        └── Conflict       write based on a stale resourceVersion    (HTTP 409)
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
