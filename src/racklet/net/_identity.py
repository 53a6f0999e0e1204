"""Role identities: the SPIFFE ID each rack certificate carries, and the checks on it.

Every certificate the rack CA issues names its holder's role in a URI subjectAltName,
``spiffe://<rack>/<role>[/<name>]`` (SPIFFE's X.509-SVID form): ``controller``,
``bmc/unit-1``, ``unit/unit-1``, ``rmc``. Clients pin the ID they expect of a server
(:func:`check_peer`, run by the contexts of ``_tls`` right after the handshake); servers map
a verified client's ID to what it may do (:func:`peer_identity`, :func:`parse_id`), never a
common name. This module only reads identities; the CA (``racklet.pki``) decides them.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from typing import Any

from cryptography import x509

SCHEME = "spiffe://"
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class PeerIdentityError(ssl.SSLCertVerificationError):
    """The peer's certificate is from the rack CA but names another role than expected."""


def trust_domain(rack: str) -> str:
    """The SPIFFE trust domain of a rack: its name, lower case."""
    domain = rack.lower()
    if not _TRUST_DOMAIN.match(domain):
        raise ValueError(f"{rack!r} cannot be a SPIFFE trust domain (letters, digits, . _ -)")
    return domain


def spiffe_id(rack: str, role: str, name: str | None = None) -> str:
    """``spiffe://<rack>/<role>[/<name>]``, e.g. ``spiffe_id("rack-1", "bmc", "unit-1")``."""
    segments = [role] if name is None else [role, name]
    for segment in segments:
        if not _SEGMENT.match(segment):
            raise ValueError(f"{segment!r} cannot be part of a SPIFFE ID")
    return f"{SCHEME}{trust_domain(rack)}/{'/'.join(segments)}"


def parse_id(identity: str | None) -> tuple[str, str, str | None] | None:
    """(trust domain, role, name or None) of a SPIFFE ID; None if it is not one of ours."""
    if identity is None or not identity.startswith(SCHEME):
        return None
    domain, _, path = identity[len(SCHEME) :].partition("/")
    parts = path.split("/")
    if not domain or not 1 <= len(parts) <= 2 or not all(parts):
        return None
    return domain, parts[0], parts[1] if len(parts) == 2 else None


def _uris(peer: Mapping[str, Any] | None) -> list[str]:
    if not peer:
        return []
    return [str(v) for kind, v in peer.get("subjectAltName", ()) if kind == "URI"]


def unit_of(identity: str | None) -> str | None:
    """The unit a verified client identity speaks for (``spiffe://<rack>/unit/<name>``), or
    None: a BMC, the controller or the RMC is not a unit. The trust domain needs no check
    here: only the rack CA's certificates pass the handshake, and it names only its rack."""
    parsed = parse_id(identity)
    return parsed[2] if parsed is not None and parsed[1] == "unit" else None


def cert_identity(peer: Mapping[str, Any] | None) -> str | None:
    """The SPIFFE ID in a verified peer certificate (``SSLObject.getpeercert()``), if any."""
    return next((uri for uri in _uris(peer) if uri.startswith(SCHEME)), None)


def pem_identity(cert_pem: bytes | str) -> str | None:
    """The SPIFFE ID in a PEM certificate (one's own), if any."""
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    try:
        cert = x509.load_pem_x509_certificate(data)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return next((uri for uri in uris if uri.startswith(SCHEME)), None)


def ca_trust_domain(ca_pem: bytes | str) -> str:
    """The trust domain a rack CA certificate speaks for (its subject reads ``<rack> CA``)."""
    data = ca_pem.encode() if isinstance(ca_pem, str) else ca_pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"not a PEM CA certificate: {exc}") from None
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return trust_domain(str(names[0].value).removesuffix(" CA") if names else "")


def check_peer(peer: Mapping[str, Any] | None, expect: str | None) -> None:
    """Raise :class:`PeerIdentityError` unless the peer's certificate carries ``expect``."""
    if expect is None:
        return
    found = _uris(peer)
    if expect not in found:
        shown = ", ".join(found) or "no role identity"
        raise PeerIdentityError(f"the peer certificate names {shown}, not {expect}")


def peer_identity(scope: Any) -> str | None:
    """The SPIFFE ID of this request's verified client certificate (ASGI scope), if any."""
    peer = (scope.get("extensions") or {}).get("tls", {}).get("peer")
    return cert_identity(peer)
