"""Errors of the resource types.

::

    RackletError
    └── ApiError
        └── InvalidObject    a manifest or patch does not validate; names each field path
"""

from __future__ import annotations

from racklet.errors import RackletError


class ApiError(RackletError):
    """Base of the resource-type errors."""


class InvalidObject(ApiError):
    """An object failed validation; ``problems`` holds one ``field.path: message`` per error."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
