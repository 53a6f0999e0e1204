"""Every identity in a rack's state dir, its expiry, and automatic renewal.

:func:`inventory` reads each ``*.crt`` below the state dir (the CA's own included) and says
who it is, what it may do and how long it has left. :func:`renew_due` re-issues every leaf
identity whose key sits beside it and that has less than a third of its lifetime left: same
subject, usages and names, a new key, the same lifetime. The files are replaced atomically;
TLS contexts built by ``racklet.net`` follow their files, so a running process presents the
renewed certificate on its next handshake.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from racklet.config import write_atomic
from racklet.pki._ca import RackCA
from racklet.pki._crl import CRL_NAME, crl_serials, revoked_serials
from racklet.pki.errors import PkiError

EXPIRING_DAYS = 30
RENEW_FRACTION = 1 / 3
BMC_HELD = "certificates"
"""A state dir holding this subdirectory is a BMC's or the RMC's that makes its own keys (its
CertificateService); the controller renews those identities by CSR, never by file."""
HELD_STEMS = ("server", "identity")
"""The certificates such a service holds itself (``server.crt`` mirrors its HTTPS slot,
``identity.crt`` is a unit identity before its first CSR); others beside them (the RMC's
``client.crt``) are still renewed by file."""


@dataclass(frozen=True)
class IdentityInfo:
    """One certificate found in the state dir."""

    path: Path
    subject: str
    usage: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    revoked: bool

    def days_left(self, now: dt.datetime) -> float:
        return (self.not_after - now) / dt.timedelta(days=1)

    def fraction_left(self, now: dt.datetime) -> float:
        lifetime = self.not_after - self.not_before
        return (self.not_after - now) / lifetime if lifetime.total_seconds() > 0 else 0.0

    def state(self, now: dt.datetime) -> str:
        if self.revoked:
            return "REVOKED"
        left = self.days_left(now)
        if left <= 0:
            return "EXPIRED"
        # Under 30 days and past renewal time: a short-lived identity (a 3-day controller
        # client) is not "expiring" while renewal keeps it fresh, only once renewal is late.
        late = self.fraction_left(now) < RENEW_FRACTION
        return "EXPIRING" if left < EXPIRING_DAYS and late else "ok"


def _usage(cert: x509.Certificate) -> str:
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "ca"
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "-"
    names = [
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ]
    return "+".join(n for n, oid in names if oid in eku) or "-"


def inventory(state_dir: Path) -> list[IdentityInfo]:
    """Every ``*.crt`` below ``state_dir`` (sorted by path); unreadable files are an error.

    Not those a BMC or the RMC holds itself once it makes its own keys (``certificates/``):
    it reports them through Redfish and the controller renews them by CSR.
    """
    pki = state_dir / "pki"
    revoked = set(revoked_serials(pki)) if pki.is_dir() else set()
    if (pki / CRL_NAME).exists():
        revoked |= crl_serials(pki)  # what the listeners enforce, not only the record
    found: list[IdentityInfo] = []
    for path in sorted(state_dir.rglob("*.crt")):
        if (path.parent / BMC_HELD).is_dir() and path.stem in HELD_STEMS:
            continue  # a BMC that holds its own keys reports them itself (``racklet pki status``)
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise PkiError(f"{path} is not a readable certificate: {exc}") from exc
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        found.append(
            IdentityInfo(
                path=path,
                subject=str(cn[0].value) if cn else cert.subject.rfc4514_string(),
                usage=_usage(cert),
                serial=cert.serial_number,
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                revoked=cert.serial_number in revoked,
            )
        )
    return found


def renew_due(
    ca: RackCA, state_dir: Path, *, now: dt.datetime | None = None, fraction: float = RENEW_FRACTION
) -> list[Path]:
    """Renew each leaf identity with less than ``fraction`` of its lifetime left.

    Only identities whose key (``<stem>.key``) sits beside the certificate are renewed, and
    not in a BMC's state dir once it holds its own keys (``certificates/``): a certificate for
    a key held elsewhere is renewed by signing a new CSR instead.
    Revoked identities are not renewed. Returns the certificate paths renewed. Call it
    periodically (the controller does, see docs/pki.md).
    """
    now = now or dt.datetime.now(dt.UTC)
    renewed: list[Path] = []
    for info in inventory(state_dir):
        key_path = info.path.with_suffix(".key")
        if info.usage == "ca" or info.revoked or not key_path.exists():
            continue
        if info.fraction_left(now) >= fraction:
            continue
        fresh = ca.renew(info.path.read_bytes())
        write_atomic(key_path, fresh.key_pem, mode=0o600)
        write_atomic(info.path, fresh.cert_pem)
        renewed.append(info.path)
    return renewed
