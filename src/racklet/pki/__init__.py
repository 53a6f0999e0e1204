"""The rack's certificate authority: every listener's and every machine's identity.

Issue (:meth:`RackCA.issue`, with a role: the SPIFFE ID peers pin), renew (:meth:`RackCA.renew`,
:func:`renew_due`), sign a CSR for a key held elsewhere (:meth:`RackCA.sign_csr`, deciding every
name itself), revoke (:func:`revoke`, ``pki/crl.pem``), list (:func:`inventory`), and serve TLS
that follows the CRL (:func:`server_context_with_crl`).
"""

from racklet.pki._ca import Identity, RackCA, role_uri
from racklet.pki._crl import (
    CRL_NAME,
    crl_next_update,
    crl_serials,
    refresh_crl,
    revoke,
    revoked_serials,
    write_crl,
)
from racklet.pki._inventory import EXPIRING_DAYS, IdentityInfo, inventory, renew_due
from racklet.pki._tls import server_context_with_crl
from racklet.pki.errors import CsrRefused, PkiError

__all__ = [
    "CRL_NAME",
    "EXPIRING_DAYS",
    "CsrRefused",
    "Identity",
    "IdentityInfo",
    "PkiError",
    "RackCA",
    "crl_next_update",
    "crl_serials",
    "inventory",
    "refresh_crl",
    "renew_due",
    "revoke",
    "revoked_serials",
    "role_uri",
    "server_context_with_crl",
    "write_crl",
]
