"""The keys and certificates a Redfish service holds: a BMC's (the unit's identity and its
own HTTPS certificate) and the RMC's (its HTTPS certificate), one store for both.

Each *slot* holds one key and one certificate in a single file
(``certificates/<slot>.pem``, mode 0600), replaced atomically, so a reader sees the old pair
or the new pair and never a new key beside an old certificate, even after a power cut.
:meth:`CertificateStore.generate_csr` makes a fresh EC P-256 key that never leaves the BMC
(``certificates/<slot>.pending.key``, 0600) and returns its PKCS#10 request;
:meth:`CertificateStore.install` accepts only a certificate for that pending key, from the
rack CA, naming the slot's holder, carrying the slot's usages and its role identity
(``spiffe://<rack>/unit/<unit>``, ``.../bmc/<unit>`` or ``.../rmc``). Before the first
replacement a slot falls back to the ``<stem>.key``/``<stem>.crt`` pair ``racklet up`` wrote
(the HTTPS bootstrap: the controller must trust the BMC before it can send a CSR). A new
HTTPS pair is also mirrored to ``server.key``/``server.crt`` (each file atomically) for a host
that loads the listener's certificate from those paths (a following context, or a restart).
The slots are the caller's: :meth:`CertificateStore.for_bmc` makes a BMC's two, the RMC
passes its one (:func:`https_slot`).

Blocking (file I/O, key generation): callers run these through ``asyncio.to_thread``. Not
here: Redfish (``_certificates``), deciding when to renew (the controller's job).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from racklet.bmc.errors import BmcError, StateError
from racklet.config import write_atomic, write_private
from racklet.net import ca_trust_domain, pem_identity, server_context, spiffe_id

IDENTITY_WAIT_SECONDS = 8.0
"""How long the link's ``identity`` request waits for a first identity (under the unit's
10 s link timeout): a unit powered on before the controller provisioned it still boots."""


class CertificateRejected(BmcError):
    """A certificate offered for a slot does not fit it; the message says why."""


@dataclass(frozen=True)
class CertSlot:
    """One place a certificate lives, as Redfish shows it and as the disk holds it."""

    id: str
    collection: str
    """The Redfish CertificateCollection path; the certificate is ``<collection>/1``."""
    common_name: str
    server: bool
    client: bool
    usage_type: str
    """Redfish ``CertificateUsageType``: what the certificate is for."""
    role: str
    """The role its SPIFFE ID names: ``unit/<unit>``, ``bmc/<unit>`` or ``rmc``."""
    legacy_stem: str
    """``<stem>.key``/``<stem>.crt`` in the state dir, used until the first replacement."""

    @property
    def uri(self) -> str:
        return f"{self.collection}/1"


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _split_pem(key_text: str, cert_text: str, slot: str) -> tuple[str, str]:
    """The key block of ``key_text`` and the certificate block(s) of ``cert_text``."""
    end = "-----END PRIVATE KEY-----"
    try:
        key = key_text[: key_text.index(end) + len(end)] + "\n"
        cert = cert_text[cert_text.index("-----BEGIN CERTIFICATE-----") :]
    except ValueError:
        raise StateError(f"the {slot} key and certificate file is malformed") from None
    return key, cert


def _reason(exc: Exception) -> str:
    """What went wrong, in a few words (a missing file, not a traceback of a parser)."""
    if isinstance(exc, FileNotFoundError):
        return f"{Path(str(exc.filename)).name} is missing"
    if isinstance(exc, KeyError):
        return f"the trust bundle has no {exc}"
    return f"{type(exc).__name__}: {str(exc).split('.')[0]}"


def _eku(cert: x509.Certificate) -> tuple[bool, bool]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False, False
    return ExtendedKeyUsageOID.SERVER_AUTH in eku, ExtendedKeyUsageOID.CLIENT_AUTH in eku


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""


def https_collection(manager_path: str) -> str:
    """Where a manager's HTTPS certificate lives, as OpenBMC's bmcweb puts it too; also the
    Manager's ``Certificates`` (its device identity: the SPIFFE ID peers pin)."""
    return f"{manager_path}/NetworkProtocol/HTTPS/Certificates"


def https_slot(manager_path: str, common_name: str, role: str, stem: str = "server") -> CertSlot:
    """The slot of a manager's HTTPS listener certificate (``<stem>.key``/``<stem>.crt``
    before the first replacement)."""
    collection = https_collection(manager_path)
    return CertSlot("https", collection, common_name, True, False, "Web", role, stem)


class CertificateStore:
    """The slots of one service, on disk under its state dir: the listener's HTTPS
    certificate and, on a BMC, the identity of the unit it manages."""

    def __init__(
        self,
        state_dir: Path,
        https: CertSlot,
        identity: CertSlot | None = None,
        *,
        rack_ca: Path | None = None,
        identity_wait: float = IDENTITY_WAIT_SECONDS,
    ) -> None:
        self._dir = state_dir / "certificates"
        self._state_dir = state_dir
        self._rack_ca = rack_ca
        self._identity_wait = identity_wait
        self.identity = identity
        self.https = https
        self.slots = (https,) if identity is None else (identity, https)
        self._contexts: list[ssl.SSLContext] = []
        self._lock = threading.Lock()
        self._installed = asyncio.Event()

    @classmethod
    def for_bmc(
        cls,
        unit: str,
        state_dir: Path,
        *,
        system_path: str,
        manager_path: str,
        rack_ca: Path | None = None,
        identity_wait: float = IDENTITY_WAIT_SECONDS,
    ) -> CertificateStore:
        """A BMC's store: the unit's identity and the BMC's own HTTPS certificate."""
        identity = CertSlot(
            "identity",
            f"{system_path}/Certificates",
            unit,
            True,
            True,
            "LDevID",
            f"unit/{unit}",
            "identity",
        )
        https = https_slot(manager_path, f"{unit}-bmc", f"bmc/{unit}")
        return cls(state_dir, https, identity, rack_ca=rack_ca, identity_wait=identity_wait)

    # -- lookup ------------------------------------------------------------------------------

    def by_collection(self, path: str) -> CertSlot | None:
        return next((s for s in self.slots if s.collection == path.rstrip("/")), None)

    def by_uri(self, path: str) -> CertSlot | None:
        return next((s for s in self.slots if s.uri == path.rstrip("/")), None)

    # -- reading -----------------------------------------------------------------------------

    def _pair_paths(self, slot: CertSlot) -> tuple[Path, Path] | None:
        """(key file, cert file) of the slot's current pair, or None when it holds none."""
        combined = self._dir / f"{slot.id}.pem"
        if combined.exists():
            return combined, combined
        key = self._state_dir / f"{slot.legacy_stem}.key"
        cert = self._state_dir / f"{slot.legacy_stem}.crt"
        return (key, cert) if key.exists() and cert.exists() else None

    def read_pair(self, slot: CertSlot) -> tuple[str, str] | None:
        """(key PEM, certificate PEM) of the slot, or None."""
        with self._lock:
            paths = self._pair_paths(slot)
            if paths is None:
                return None
            try:
                key_text, cert_text = paths[0].read_text(), paths[1].read_text()
            except OSError as exc:
                raise StateError(f"cannot read the {slot.id} certificate: {exc}") from exc
        return _split_pem(key_text, cert_text, slot.id)

    def certificate(self, slot: CertSlot) -> x509.Certificate | None:
        pair = self.read_pair(slot)
        if pair is None:
            return None
        try:
            return x509.load_pem_x509_certificate(pair[1].encode())
        except ValueError as exc:
            raise StateError(f"the {slot.id} certificate is not PEM: {exc}") from exc

    # -- CSR and installation ----------------------------------------------------------------

    def generate_csr(self, slot: CertSlot, alt_names: tuple[str, ...] = ()) -> str:
        """A new pending key for ``slot`` (replacing any earlier one) and its CSR PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Racklet"),
                x509.NameAttribute(NameOID.COMMON_NAME, slot.common_name),
            ]
        )
        builder = x509.CertificateSigningRequestBuilder().subject_name(name)
        if alt_names:
            entries: list[x509.GeneralName] = []
            for alt in alt_names:
                try:
                    entries.append(x509.IPAddress(ipaddress.ip_address(alt)))
                except ValueError:
                    entries.append(x509.DNSName(alt))
            builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
        csr = builder.sign(key, hashes.SHA256())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with self._lock:
            self._dir.mkdir(mode=0o700, exist_ok=True)
            write_private(self._dir / f"{slot.id}.pending.key", pem)
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def _rack_ca_cert(self) -> x509.Certificate:
        """The rack CA a certificate must come from. A service that holds none (a BMC whose
        trust bundle was never provisioned, or was damaged) cannot tell the rack's certificate
        from anyone's: the offer is refused (a client's answer, 400), never installed."""
        try:
            if self._rack_ca is not None:
                return x509.load_pem_x509_certificate(self._rack_ca.read_bytes())
            trust = json.loads((self._state_dir / "trust.json").read_text())
            return x509.load_pem_x509_certificate(str(trust["caBundle"]).encode())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CertificateRejected(
                "the service holds no rack CA to check the certificate against "
                f"({_reason(exc)}): provision its trust bundle first"
            ) from exc

    def check(self, slot: CertSlot, cert: x509.Certificate, key_pem: bytes | None) -> None:
        """Refuse ``cert`` unless it fits ``slot`` and the pending key (raises)."""
        if key_pem is None:
            raise CertificateRejected(
                "no key is pending for this certificate: call GenerateCSR first"
            )
        pending = serialization.load_pem_private_key(key_pem, None)
        if not isinstance(pending, ec.EllipticCurvePrivateKey) or _public_der(
            cert.public_key()
        ) != _public_der(pending.public_key()):
            raise CertificateRejected(
                "the certificate is for another key than the one GenerateCSR made"
            )
        ca = self._rack_ca_cert()
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateRejected("the certificate was not issued by the rack CA") from exc
        now = dt.datetime.now(dt.UTC)
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            raise CertificateRejected("the certificate is not valid now")
        if _common_name(cert.subject) != slot.common_name:
            raise CertificateRejected(f"the certificate must name {slot.common_name!r}")
        expected = spiffe_id(
            ca_trust_domain(ca.public_bytes(serialization.Encoding.PEM)), *slot.role.split("/")
        )
        if pem_identity(cert.public_bytes(serialization.Encoding.PEM)) != expected:
            raise CertificateRejected(f"the certificate must carry the role identity {expected}")
        server, client = _eku(cert)
        if (slot.server and not server) or (slot.client and not client):
            wanted = "server and client" if slot.client else "server"
            raise CertificateRejected(f"the certificate must allow {wanted} authentication")

    def install(self, slot: CertSlot, cert_pem: str) -> x509.Certificate:
        """Check ``cert_pem`` against the pending key, then make the pair current at once."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode())
        except ValueError as exc:
            raise CertificateRejected(f"not a PEM certificate: {exc}") from exc
        pending = self._dir / f"{slot.id}.pending.key"
        with self._lock:
            key_pem = pending.read_bytes() if pending.exists() else None
            try:
                self.check(slot, cert, key_pem)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # a malformed field
                raise CertificateRejected(f"the certificate cannot be checked: {exc}") from exc
            assert key_pem is not None
            combined = self._dir / f"{slot.id}.pem"
            leaf = cert.public_bytes(serialization.Encoding.PEM)
            write_private(combined, key_pem + leaf)  # the one atomic step
            pending.unlink(missing_ok=True)
            if slot is self.https:
                self._mirror_https(key_pem, leaf)
                for context in self._contexts:
                    context.load_cert_chain(combined)  # new handshakes only
            else:
                for suffix in (".crt", ".key"):
                    (self._state_dir / f"{slot.legacy_stem}{suffix}").unlink(missing_ok=True)
        if slot is self.identity:
            self._installed.set()
        return cert

    def _mirror_https(self, key_pem: bytes, cert_pem: bytes) -> None:
        """Refresh ``server.key``/``server.crt`` too, for a listener that follows those paths
        (``live_server_context``) or loads them when it restarts (``BmcHost`` in the twin)."""
        write_private(self._state_dir / f"{self.https.legacy_stem}.key", key_pem)
        write_atomic(self._state_dir / f"{self.https.legacy_stem}.crt", cert_pem)

    # -- consumers ---------------------------------------------------------------------------

    def server_context(self, ca: Path | None = None) -> ssl.SSLContext:
        """The HTTPS listener's context; a replaced HTTPS certificate is loaded into it."""
        paths = self._pair_paths(self.https)
        if paths is None:
            raise StateError("the service holds no HTTPS certificate")
        context = server_context(paths[1], paths[0], ca=ca)
        self._contexts.append(context)
        return context

    async def unit_identity(self) -> tuple[str, str]:
        """The unit's (key, certificate), waiting a little for a first one to be installed."""
        identity = self.identity
        if identity is None:
            raise StateError("this service holds no unit identity")
        self._installed.clear()
        pair = await asyncio.to_thread(self.read_pair, identity)
        if pair is None:
            try:
                async with asyncio.timeout(self._identity_wait):
                    await self._installed.wait()
            except TimeoutError:
                raise StateError(
                    "the BMC holds no identity for this unit yet "
                    "(the controller provisions it through CertificateService)"
                ) from None
            pair = await asyncio.to_thread(self.read_pair, identity)
        if pair is None:
            raise StateError("the BMC holds no identity for this unit")
        return pair
