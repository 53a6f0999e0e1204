"""The unit OS agent: what runs on a unit after the bootstrap client booted its payload.

:func:`run_os` brings the OS up, serves ``/metrics`` (OpenMetrics, HTTPS with the unit
identity) and heartbeats to the controller over mutual TLS until the BMC requests a shutdown.
"""

from racklet.node._os import run_os
from racklet.node.errors import AgentServerError, NodeError

__all__ = ["AgentServerError", "NodeError", "run_os"]
