"""OS agent errors::

    NodeError            the OS agent could not provide a service
    └── AgentServerError the agent's HTTPS listener could not start

The OS itself never stops on these: they are logged and printed on the console, and the unit
keeps running (as a real OS does when one service fails).
"""

from racklet.errors import RackletError


class NodeError(RackletError):
    """The unit OS agent could not provide one of its services."""


class AgentServerError(NodeError):
    """The agent's HTTPS listener could not start (port taken, bad identity)."""
