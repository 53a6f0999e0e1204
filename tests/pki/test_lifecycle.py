"""The rack CA's lifecycle: renew, CSR signing, revocation with a CRL, inventory, auto-renewal."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from racklet.net import client_context
from racklet.pki import (
    PkiError,
    RackCA,
    inventory,
    renew_due,
    revoke,
    server_context_with_crl,
    write_crl,
)


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_renew_keeps_subject_usages_names_and_lifetime(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path)
    old = ca.issue("bmc-unit-1", client=True, sans=("10.0.0.7", "bmc-1.rack"), days=7)
    new = ca.renew(old.cert_pem)
    a, b = _cert(old.cert_pem), _cert(new.cert_pem)
    assert b.subject == a.subject and _usages(b) == _usages(a)
    san = b.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bmc-1.rack"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert b.serial_number != a.serial_number and new.key_pem != old.key_pem
    assert (b.not_valid_after_utc - b.not_valid_before_utc).days == 7
    b.verify_directly_issued_by(ca.cert)


def test_renew_refuses_a_foreign_certificate(tmp_path: Path) -> None:
    ours = RackCA.create(tmp_path / "a")
    theirs = RackCA.create(tmp_path / "b", rack="rack-2")
    with pytest.raises(PkiError, match="not issued by this rack CA"):
        ours.renew(theirs.issue("x").cert_pem)


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bmc-2.rack")]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def test_sign_csr_certifies_a_key_held_elsewhere(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = ca.sign_csr(
        _csr(key, "bmc-unit-2"),
        common_name="bmc-unit-2",
        role="bmc/unit-2",
        asked_sans=("bmc-2.rack",),
        sans=("10.0.0.2",),
        client=True,
        days=30,
    )
    cert = _cert(pem)
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bmc-unit-2"
    assert _usages(cert) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # The CA's names, not the request's: its DNS name was only checked, never copied.
    assert san.get_values_for_type(x509.DNSName) == []
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.2"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://rack-1/bmc/unit-2"]
    cert.verify_directly_issued_by(ca.cert)


def test_sign_csr_rejects_garbage_and_weak_keys(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path)
    with pytest.raises(PkiError, match="not a PEM certificate signing request"):
        ca.sign_csr(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            common_name="old-bmc",
        )
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(PkiError, match="too weak"):
        ca.sign_csr(_csr(weak, "old-bmc"), common_name="old-bmc")


async def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> str:
    """A real TLS handshake on loopback: 'ok', or the reason the server refused."""
    refused: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    def on_error(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        refused.append(str(context.get("exception") or context.get("message")))

    asyncio.get_running_loop().set_exception_handler(on_error)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        data = await reader.read(5)
        writer.close()
        return "ok" if data == b"hello" else f"refused {refused}"
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused {exc}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_revoked_client_is_refused_at_the_handshake(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = RackCA.create(pki)
    server_key, server_crt = ca.issue("controller").write(tmp_path, "server")
    good_key, good_crt = ca.issue("unit-1", server=False, client=True).write(tmp_path, "good")
    bad_key, bad_crt = ca.issue("unit-2", server=False, client=True).write(tmp_path, "bad")
    write_crl(ca, pki)

    def context() -> ssl.SSLContext:
        return server_context_with_crl(
            server_crt, server_key, ca=pki / "ca.crt", crl=pki / "crl.pem"
        )

    ca_crt = pki / "ca.crt"
    assert await _handshake(context(), client_context(ca_crt, bad_crt, bad_key)) == "ok"
    revoke(ca, pki, bad_crt.read_bytes())
    refused = await _handshake(context(), client_context(ca_crt, bad_crt, bad_key))
    assert refused.startswith("refused")
    assert await _handshake(context(), client_context(ca_crt, good_crt, good_key)) == "ok"
    crl = x509.load_pem_x509_crl((pki / "crl.pem").read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(_cert(bad_crt.read_bytes()).serial_number)


def test_a_missing_crl_is_an_error_not_a_silent_downgrade(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path)
    key, crt = ca.issue("controller").write(tmp_path, "server")
    with pytest.raises(PkiError, match="cannot build a TLS context with the CRL"):
        server_context_with_crl(crt, key, ca=tmp_path / "ca.crt", crl=tmp_path / "crl.pem")


def test_inventory_flags_expiring_and_revoked(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = RackCA.create(pki)
    (tmp_path / "bmc" / "unit-1").mkdir(parents=True)
    ca.issue("controller", days=90).write(tmp_path, "server")
    ca.issue("unit-1", server=False, client=True, days=10).write(
        tmp_path / "bmc" / "unit-1", "identity"
    )
    _, doomed = ca.issue("old", days=90).write(tmp_path, "old")
    revoke(ca, pki, doomed.read_bytes())
    now = dt.datetime.now(dt.UTC)
    found = {str(i.path.relative_to(tmp_path)): i for i in inventory(tmp_path)}
    assert set(found) == {"pki/ca.crt", "server.crt", "bmc/unit-1/identity.crt", "old.crt"}
    assert found["pki/ca.crt"].usage == "ca" and found["pki/ca.crt"].state(now) == "ok"
    assert found["server.crt"].usage == "server" and found["server.crt"].state(now) == "ok"
    assert found["bmc/unit-1/identity.crt"].usage == "client"
    assert found["bmc/unit-1/identity.crt"].state(now) == "ok"  # renewal is not due yet
    late = now + dt.timedelta(days=7)  # past two thirds, still not renewed
    assert found["bmc/unit-1/identity.crt"].state(late) == "EXPIRING"
    assert 9 < found["bmc/unit-1/identity.crt"].days_left(now) <= 10
    assert found["old.crt"].state(now) == "REVOKED"


def test_renew_due_renews_only_identities_under_a_third_left(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = RackCA.create(pki)
    _, fresh = ca.issue("fresh", days=30).write(tmp_path, "fresh")
    key_b, aging = ca.issue("aging", client=True, days=3).write(tmp_path, "aging")
    before = aging.read_bytes()
    # 2.5 of 3 days gone: under a third left for "aging", five-sixths left for "fresh"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2.5)
    assert renew_due(ca, tmp_path, now=later) == [aging]
    assert aging.read_bytes() != before and fresh.exists()
    renewed = _cert(aging.read_bytes())
    assert (renewed.not_valid_after_utc - renewed.not_valid_before_utc).days == 3
    assert stat.S_IMODE(key_b.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_b.read_bytes(), None)
    assert key.public_key() == renewed.public_key()
    assert renew_due(ca, tmp_path) == [], "nothing is due right after renewal"


async def test_the_controller_maintenance_task_renews_and_signs_the_crl(tmp_path: Path) -> None:
    from racklet.controller._pki_maintenance import PkiMaintenance

    ca = RackCA.create(tmp_path / "pki")
    _, cert = ca.issue("unit-9", client=True, days=1).write(tmp_path, "identity")
    # a fresh identity is not due (renew_due's timing is tested above); the CRL is signed
    maintenance = PkiMaintenance(tmp_path, interval_seconds=3600)
    assert maintenance.run_once() == []
    assert (tmp_path / "pki" / "crl.pem").exists(), "the CRL is signed on the first round"
    await maintenance.start()
    await maintenance.stop()
    await maintenance.stop()  # idempotent
    assert cert.exists()
