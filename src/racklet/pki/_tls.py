"""A TLS server context that honours the rack CA's CRL, following it as it changes.

The listeners that accept client certificates (the machine listener, the bulk-target
server, every BMC) use it: each new handshake sees the newest CRL within
``racklet.net.FOLLOW_SECONDS`` of a revocation, with no restart (see docs/security.md).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from racklet.net import live_server_context
from racklet.pki.errors import PkiError


def server_context_with_crl(
    cert: Path, key: Path, *, ca: Path, crl: Path, require_client_cert: bool = True
) -> ssl.SSLContext:
    """``live_server_context`` with a CRL: a revoked client fails the handshake.

    A missing or unreadable CRL at start is an error, never a silent downgrade to no
    revocation check.
    """
    try:
        return live_server_context(
            cert, key, ca=ca, crl=crl, require_client_cert=require_client_cert
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise PkiError(f"cannot build a TLS context with the CRL {crl}: {exc}") from exc
