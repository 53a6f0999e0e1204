"""Errors of the controller.

::

    RackletError
    └── ControllerError
        ├── TemporaryError   retry this object after ``delay`` seconds (no back-off growth)
        └── PermanentError   retrying soon will not help; back off to the longest delay
"""

from __future__ import annotations

from racklet.errors import RackletError


class ControllerError(RackletError):
    """Base of the controller's errors."""


class TemporaryError(ControllerError):
    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ControllerError):
    """The object cannot be reconciled as it stands (e.g. no credentials for its BMC)."""
