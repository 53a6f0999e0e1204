"""A small ECDSA P-256 certificate authority held by the management side.

It issues server identities (BMCs, controller, dashboard) and client identities (units, the
controller when it calls BMCs), renews them (same subject, usages and names, a new key) and
signs certificate requests for keys held elsewhere (a BMC's, through Redfish
``CertificateService``). Keys are written with mode 0600. Revocation lives in ``_crl``, the
state-dir inventory and automatic renewal in ``_inventory``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from racklet.config import write_atomic, write_private
from racklet.net import spiffe_id
from racklet.pki.errors import CsrRefused, PkiError

_ORG = "Racklet"
_DEFAULT_SANS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Identity:
    """A private key and its certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``stem.key`` (0600) and ``stem.crt``; return their paths."""
        key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
        write_private(key_path, self.key_pem)
        write_atomic(cert_path, self.cert_pem, mode=0o644)
        return key_path, cert_path

    @property
    def common_name(self) -> str:
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(names: tuple[str, ...], uri: str | None) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)] if uri else []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class RackCA:
    """The rack CA: a self-signed P-256 root that signs every identity of one rack."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self._key = key
        self.cert = cert

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def rack(self) -> str:
        """The rack this CA serves (its subject reads ``<rack> CA``): the SPIFFE trust domain."""
        return _common_name(self.cert).removesuffix(" CA")

    def spiffe_id(self, role: str) -> str:
        """``spiffe://<rack>/<role>`` for a role path such as ``bmc/unit-1`` or ``controller``."""
        kind, _, name = role.partition("/")
        return spiffe_id(self.rack, kind, name or None)

    @classmethod
    def create(cls, directory: Path, rack: str = "rack-1", days: int = 365) -> RackCA:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name(f"{rack} CA")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        ca = cls(key, cert)
        Identity(_key_pem(key), ca.cert_pem).write(directory, "ca")
        return ca

    @classmethod
    def load(cls, directory: Path) -> RackCA:
        try:
            key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
            cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        except (OSError, ValueError) as exc:
            raise PkiError(f"cannot load the rack CA from {directory}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{directory / 'ca.key'} is not an ECDSA key")
        return cls(key, cert)

    def issue(
        self,
        common_name: str,
        *,
        role: str | None = None,
        server: bool = True,
        client: bool = False,
        sans: tuple[str, ...] = _DEFAULT_SANS,
        days: int = 90,
    ) -> Identity:
        """Issue a leaf identity usable as a TLS server, a TLS client, or both.

        ``role`` (``controller``, ``bmc/unit-1``, ``unit/unit-1``, ``rmc``) becomes the
        certificate's SPIFFE ID (a URI subjectAltName), which peers pin and map to rights.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        uri = self.spiffe_id(role) if role else None
        cert = self._sign(key.public_key(), common_name, server, client, sans, days, uri)
        return Identity(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))

    def renew(self, cert_pem: bytes, *, days: int | None = None) -> Identity:
        """Re-issue an identity this CA signed: same CN, usages, names and role, a fresh key.

        ``days`` defaults to the old certificate's own lifetime, so short-lived stays short.
        """
        old = _load_cert(cert_pem)
        self._check_issued(old)
        server, client = _usages(old)
        lifetime = old.not_valid_after_utc - old.not_valid_before_utc - dt.timedelta(minutes=5)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(
            key.public_key(),
            _common_name(old),
            server,
            client,
            _sans_of(old) or _DEFAULT_SANS,
            days or max(1, round(lifetime / dt.timedelta(days=1))),
            role_uri(old),
        )
        return Identity(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))

    def sign_csr(
        self,
        csr_pem: bytes,
        *,
        common_name: str,
        role: str | None = None,
        asked_sans: tuple[str, ...] = (),
        server: bool = True,
        client: bool = False,
        sans: tuple[str, ...] = _DEFAULT_SANS,
        days: int = 90,
    ) -> bytes:
        """Sign a PKCS#10 request for a key held elsewhere (a BMC's); return the cert PEM.

        The request's signature must verify (proof it holds the key). Nothing else is taken
        from it: the CA decides every name (``common_name``, ``sans``, the ``role`` SPIFFE
        ID), usage and lifetime. A request whose subject is not ``common_name``, or whose
        subjectAltNames are not exactly the ``asked_sans`` the requester was asked for, is
        refused (:class:`CsrRefused`): a holder asking for another name is lying.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise PkiError(f"not a PEM certificate signing request: {exc}") from exc
        if not csr.is_signature_valid:
            raise PkiError("the certificate signing request's signature does not verify")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise PkiError("only ECDSA and RSA keys can be certified")
        if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
            raise PkiError(f"an RSA key of {public.key_size} bits is too weak (need 2048)")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        got = str(names[0].value) if names else ""
        if got != common_name:
            raise CsrRefused(common_name, got or "no common name")
        try:
            ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            requested = _san_strings(ext.value)
        except x509.ExtensionNotFound:
            requested = ()
        if sorted(requested) != sorted(asked_sans):
            asked = ", ".join([common_name, *asked_sans])
            raise CsrRefused(asked, ", ".join([got, *requested]))
        uri = self.spiffe_id(role) if role else None
        cert = self._sign(public, common_name, server, client, sans, days, uri)
        return cert.public_bytes(serialization.Encoding.PEM)

    def _sign(
        self,
        public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        common_name: str,
        server: bool,
        client: bool,
        sans: tuple[str, ...],
        days: int,
        uri: str | None = None,
    ) -> x509.Certificate:
        if not (server or client):
            raise PkiError("an identity must be a server, a client, or both")
        if days < 1:
            raise PkiError(f"a certificate must live at least one day, not {days}")
        now = dt.datetime.now(dt.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if server or uri:
            builder = builder.add_extension(_san(sans if server else (), uri), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def _check_issued(self, cert: x509.Certificate) -> None:
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PkiError(f"{_common_name(cert)!r} was not issued by this rack CA") from exc

    def signer(self) -> ec.EllipticCurvePrivateKey:
        """The CA key, for signing what belongs to the CA (its CRL)."""
        return self._key


def _load_cert(cert_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _usages(cert: x509.Certificate) -> tuple[bool, bool]:
    """(server, client) from the extended key usage."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True, False
    return ExtendedKeyUsageOID.SERVER_AUTH in eku, ExtendedKeyUsageOID.CLIENT_AUTH in eku


def _san_strings(san: x509.SubjectAlternativeName) -> tuple[str, ...]:
    """IP and DNS names, then any URI: everything a requester could try to slip in."""
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    others = san.get_values_for_type(x509.UniformResourceIdentifier)
    return tuple(ips + san.get_values_for_type(x509.DNSName) + others)


def role_uri(cert: x509.Certificate) -> str | None:
    """The certificate's SPIFFE ID (URI subjectAltName), or None for a certificate made
    before roles (an old rack's, re-issued with one on its next renewal)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = ext.value.get_values_for_type(x509.UniformResourceIdentifier)
    return next((u for u in uris if u.startswith("spiffe://")), None)


def _sans_of(cert: x509.Certificate) -> tuple[str, ...]:
    """IP and DNS names (not the role URI, which ``role_uri`` reads)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    ips = [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]
    return tuple(ips + ext.value.get_values_for_type(x509.DNSName))
