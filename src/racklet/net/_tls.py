"""TLS contexts for every Racklet listener and client: TLS 1.2 or newer, modern ciphers only."""

from __future__ import annotations

import ssl
from pathlib import Path

_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(
    cert: Path, key: Path, *, ca: Path | None = None, require_client_cert: bool = False
) -> ssl.SSLContext:
    """A server context; with ``ca`` it asks for (or requires) client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_CIPHERS)
    context.load_cert_chain(cert, key)
    if ca is not None:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(
    ca: Path | str, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client context that trusts only the rack CA, optionally presenting a client identity."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    return context
