"""Errors of the resource types.

::

    RackletError
    └── ApiError
        ├── InvalidObject    a manifest or patch does not validate; names each field path
        └── InvalidSelector  a label selector does not parse; names the bad requirement
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


class InvalidSelector(ApiError):
    """A label selector that does not parse."""

    def __init__(self, requirement: str, why: str) -> None:
        super().__init__(f"labelSelector: {requirement!r}: {why}")
