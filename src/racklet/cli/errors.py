"""CLI errors: ``UsageError`` (bad arguments) and ``RackNotRunning`` (nothing answers)."""

from racklet.errors import RackletError


class UsageError(RackletError):
    """The command line asks for something impossible (exit 2)."""


class RackNotRunning(RackletError):
    """The config names a rack but nothing answers at its address."""


class ApiError(RackletError):
    """The controller refused a request; the message is the controller's own."""
