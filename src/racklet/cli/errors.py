"""CLI errors: ``UsageError`` (bad arguments), ``RackNotRunning`` (nothing answers) and
``ApiRequestFailed`` (the controller refused a request; not :class:`racklet.api.ApiError`)."""

from racklet.errors import RackletError


class UsageError(RackletError):
    """The command line asks for something impossible (exit 2)."""


class RackNotRunning(RackletError):
    """The config names a rack but nothing answers at its address."""


class ApiRequestFailed(RackletError):
    """The controller refused a request; the message is the controller's own."""
