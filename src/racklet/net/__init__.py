"""Shared networking: TLS contexts and an ASGI server that many services share one loop with.

Every TLS context of the rack comes from here (``client_context``, ``server_context``,
``live_server_context``), and so does every check of a peer's role identity (``spiffe_id``,
``check_peer`` through ``client_context(expect=...)``, ``peer_identity``).

The server (``AppServer``, ``run_loop``, ``peer_common_name``) is imported on first use: it
pulls in uvicorn, which a client of the rack (every ``racklet`` command) does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from racklet.net._identity import (
    PeerIdentityError,
    ca_trust_domain,
    cert_identity,
    check_peer,
    parse_id,
    peer_identity,
    pem_identity,
    spiffe_id,
    trust_domain,
    unit_of,
)
from racklet.net._tls import FOLLOW_SECONDS, client_context, live_server_context, server_context

if TYPE_CHECKING:
    from racklet.net._server import AppServer, peer_common_name, run_loop

_SERVER_NAMES = ("AppServer", "peer_common_name", "run_loop")


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        return getattr(importlib.import_module("racklet.net._server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FOLLOW_SECONDS",
    "AppServer",
    "PeerIdentityError",
    "ca_trust_domain",
    "cert_identity",
    "check_peer",
    "client_context",
    "live_server_context",
    "parse_id",
    "peer_common_name",
    "peer_identity",
    "pem_identity",
    "run_loop",
    "server_context",
    "spiffe_id",
    "trust_domain",
    "unit_of",
]
