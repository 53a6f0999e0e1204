"""Revocation: the rack CA's certificate revocation list, ``pki/crl.pem``.

The revoked serials live in ``pki/revoked.json`` (the record); ``crl.pem`` is rebuilt from it
and signed by the CA on every revocation and whenever :func:`refresh_crl` finds it past half
its validity. A TLS listener that loads it (:func:`racklet.pki.server_context_with_crl`)
refuses a revoked peer at the handshake; listeners follow the file, so a revocation takes
effect on running listeners within about a second (``racklet.net.FOLLOW_SECONDS``).
:func:`crl_serials` reads what the CRL itself revokes, for reports that must agree with it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from racklet.config import write_atomic
from racklet.pki._ca import RackCA
from racklet.pki.errors import PkiError

CRL_NAME = "crl.pem"
REVOKED_NAME = "revoked.json"
CRL_DAYS = 7


def revoked_serials(pki_dir: Path) -> dict[int, str]:
    """Serial → revocation time (ISO 8601) of every revoked certificate."""
    path = pki_dir / REVOKED_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {int(serial): str(when) for serial, when in data.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise PkiError(f"{path} is unreadable: {exc}") from exc


def revoke(ca: RackCA, pki_dir: Path, cert_pem: bytes) -> int:
    """Revoke one certificate this CA issued and re-sign the CRL; return its serial."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc
    if cert.issuer != ca.cert.subject:
        raise PkiError("the certificate was not issued by this rack CA")
    revoked = revoked_serials(pki_dir)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    revoked.setdefault(cert.serial_number, now.isoformat())
    document = {str(serial): when for serial, when in sorted(revoked.items())}
    write_atomic(pki_dir / REVOKED_NAME, json.dumps(document, indent=2) + "\n")
    write_crl(ca, pki_dir)
    return cert.serial_number


def write_crl(ca: RackCA, pki_dir: Path, *, days: int = CRL_DAYS) -> Path:
    """Build and sign ``crl.pem`` from the revocation record (empty if nothing is revoked)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=days))
    )
    for serial, when in revoked_serials(pki_dir).items():
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(dt.datetime.fromisoformat(when))
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca.signer(), hashes.SHA256())
    path = pki_dir / CRL_NAME
    write_atomic(path, crl.public_bytes(serialization.Encoding.PEM))
    return path


def crl_serials(pki_dir: Path, ca: x509.Certificate | None = None) -> set[int]:
    """The serials ``crl.pem`` revokes: what every listener enforces (not the record), so a
    report built on it says what the rack really refuses. Its signature is checked against
    the CA; a missing, unreadable or forged CRL is an error."""
    path = pki_dir / CRL_NAME
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
        issuer = ca or x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read the CRL {path}: {exc}") from exc
    public = issuer.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(public):
        raise PkiError(f"{path} is not signed by the rack CA")
    return {entry.serial_number for entry in crl}


def crl_next_update(pki_dir: Path) -> dt.datetime | None:
    """When ``crl.pem`` expires (listeners refuse every client certificate after that)."""
    try:
        return x509.load_pem_x509_crl((pki_dir / CRL_NAME).read_bytes()).next_update_utc
    except (OSError, ValueError):
        return None


def refresh_crl(ca: RackCA, pki_dir: Path, *, now: dt.datetime | None = None) -> bool:
    """Re-sign the CRL when it is missing or past half its validity; return whether it was."""
    path = pki_dir / CRL_NAME
    now = now or dt.datetime.now(dt.UTC)
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError):
        write_crl(ca, pki_dir)
        return True
    next_update = crl.next_update_utc
    if next_update is None or next_update - now < (next_update - crl.last_update_utc) / 2:
        write_crl(ca, pki_dir)
        return True
    return False
