"""Shared networking: TLS contexts and an ASGI server that many services share one loop with."""

from racklet.net._server import AppServer, peer_common_name, run_loop
from racklet.net._tls import client_context, server_context

__all__ = ["AppServer", "client_context", "peer_common_name", "run_loop", "server_context"]
