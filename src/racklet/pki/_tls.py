"""A TLS server context that also honours the rack CA's CRL (revoked clients are refused).

A new helper rather than a change to :func:`racklet.net.server_context`, which stays
unaware of revocation; the listeners adopt it by passing the CRL path (see docs/pki.md).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from racklet.net import server_context
from racklet.pki.errors import PkiError


def server_context_with_crl(
    cert: Path, key: Path, *, ca: Path, crl: Path, require_client_cert: bool = True
) -> ssl.SSLContext:
    """``server_context`` asking for client certificates, checking each against ``crl``.

    With the CRL loaded, OpenSSL checks the client's certificate (the leaf) against it: a
    revoked certificate fails the handshake. A missing or unreadable CRL is an error, never a
    silent downgrade to no revocation check.
    """
    context = server_context(cert, key, ca=ca, require_client_cert=require_client_cert)
    try:
        context.load_verify_locations(cafile=str(crl))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise PkiError(f"cannot load the CRL {crl}: {exc}") from exc
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context
