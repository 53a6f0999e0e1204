"""Role identities (SPIFFE IDs) decided by the CA, pinned by clients; contexts that follow
their CRL and certificates, so a revocation reaches a running listener without a restart."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from racklet.net import client_context, pem_identity, server_context, spiffe_id
from racklet.pki import CsrRefused, RackCA, renew_due, revoke, server_context_with_crl, write_crl
from tests.pki.test_lifecycle import _handshake


def _csr(cn: str, *alt: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if alt:
        names: list[x509.GeneralName] = [x509.DNSName(a) for a in alt]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_the_ca_refuses_a_csr_that_asks_for_another_name(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path)
    with pytest.raises(CsrRefused) as refused:
        ca.sign_csr(_csr("racklet-controller"), common_name="unit-1", role="unit/unit-1")
    assert (refused.value.asked, refused.value.got) == ("unit-1", "racklet-controller")
    assert "'racklet-controller', not 'unit-1'" in str(refused.value)
    with pytest.raises(CsrRefused, match=r"unit-1, evil\.example"):
        ca.sign_csr(_csr("unit-1", "evil.example"), common_name="unit-1", role="unit/unit-1")
    # Asked for exactly this: certified, with the role the CA decides.
    pem = ca.sign_csr(_csr("unit-1"), common_name="unit-1", role="unit/unit-1", client=True)
    assert pem_identity(pem) == "spiffe://rack-1/unit/unit-1"


def test_renewal_keeps_the_role(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path, rack="Rack-7")
    old = ca.issue("racklet-controller", role="controller", server=False, client=True, days=3)
    assert pem_identity(old.cert_pem) == spiffe_id("Rack-7", "controller")
    assert pem_identity(ca.renew(old.cert_pem).cert_pem) == "spiffe://rack-7/controller"


async def test_a_client_pinning_the_controller_refuses_any_other_rack_server(
    tmp_path: Path,
) -> None:
    """The unit identity (which the unit OS holds) cannot stand in for the controller."""
    ca = RackCA.create(tmp_path)
    ca_crt = tmp_path / "ca.crt"
    real = ca.issue("racklet-controller", role="controller").write(tmp_path, "controller")
    impostor = ca.issue("unit-1", role="unit/unit-1", client=True).write(tmp_path, "unit")
    client = client_context(ca_crt, expect=spiffe_id("rack-1", "controller"))
    ok = await _handshake(server_context(real[1], real[0]), client)
    assert ok == "ok"
    refused = await _handshake(server_context(impostor[1], impostor[0]), client)
    assert "names spiffe://rack-1/unit/unit-1, not spiffe://rack-1/controller" in refused
    # An unpinned client (what every client was before) accepts the impostor: the pin matters.
    unpinned = client_context(ca_crt)
    server = server_context(impostor[1], impostor[0])
    assert await _handshake(server, unpinned) == "ok"


async def _until_refused(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    for _ in range(200):  # bounded by the test's own timeout; each look is a real handshake
        result = await _handshake(server, client)
        if result != "ok":
            return result
        await asyncio.sleep(0.1)
    return "never refused"


async def test_a_running_listener_refuses_a_certificate_revoked_after_it_started(
    tmp_path: Path,
) -> None:
    pki = tmp_path / "pki"
    ca = RackCA.create(pki)
    server_key, server_crt = ca.issue("c", role="controller").write(tmp_path, "server")
    unit = ca.issue("unit-2", role="unit/unit-2", server=False, client=True)
    unit_key, unit_crt = unit.write(tmp_path, "unit")
    other_key, other_crt = ca.issue("unit-1", server=False, client=True).write(tmp_path, "u1")
    write_crl(ca, pki)
    ca_crt = pki / "ca.crt"
    running = server_context_with_crl(server_crt, server_key, ca=ca_crt, crl=pki / "crl.pem")
    assert await _handshake(running, client_context(ca_crt, unit_crt, unit_key)) == "ok"
    revoke(ca, pki, unit.cert_pem)
    refused = await _until_refused(running, client_context(ca_crt, unit_crt, unit_key))
    assert "revoked" in refused or refused.startswith("refused")
    assert await _handshake(running, client_context(ca_crt, other_crt, other_key)) == "ok"


async def test_a_following_client_presents_its_renewed_certificate(tmp_path: Path) -> None:
    """The controller's short-lived client identity is renewed under a running process."""
    pki = tmp_path / "pki"
    ca = RackCA.create(pki)
    server_key, server_crt = ca.issue("c", role="controller").write(tmp_path, "server")
    directory = tmp_path / "controller"
    directory.mkdir()
    key, crt = ca.issue("ctl", role="controller", server=False, client=True, days=3).write(
        directory, "client"
    )
    write_crl(ca, pki)
    ca_crt = pki / "ca.crt"
    client = client_context(ca_crt, crt, key, follow=True)
    server = server_context_with_crl(server_crt, server_key, ca=ca_crt, crl=pki / "crl.pem")
    assert await _handshake(server, client) == "ok"
    revoke(ca, pki, crt.read_bytes())  # the old certificate is now useless...
    assert (await _until_refused(server, client)).startswith("refused")
    import datetime as dt

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2, hours=12)
    # ...until renewal, which a revoked identity does not get: issue afresh as the operator would
    fresh = ca.issue("ctl", role="controller", server=False, client=True, days=3)
    fresh.write(directory, "client")
    assert renew_due(ca, tmp_path, now=later) == [crt]  # and the renewal loop keeps it fresh
    for _ in range(200):
        if await _handshake(server, client) == "ok":
            break
        await asyncio.sleep(0.1)
    assert await _handshake(server, client) == "ok"


async def test_a_half_written_crl_keeps_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CRL that cannot be read (a writer mid-way, a full disk) is never "no check": the
    listener keeps the generation it had, revoked certificates stay refused."""
    pki = tmp_path / "pki"
    ca = RackCA.create(pki)
    server_key, server_crt = ca.issue("c", role="controller").write(tmp_path, "server")
    bad = ca.issue("unit-2", role="unit/unit-2", server=False, client=True)
    bad_key, bad_crt = bad.write(tmp_path, "bad")
    good_key, good_crt = ca.issue("u1", role="unit/unit-1", client=True).write(tmp_path, "ok")
    write_crl(ca, pki)
    revoke(ca, pki, bad.cert_pem)
    ca_crt = pki / "ca.crt"
    running = server_context_with_crl(server_crt, server_key, ca=ca_crt, crl=pki / "crl.pem")
    monkeypatch.setattr("racklet.net._tls.FOLLOW_SECONDS", 0.0)  # look at every connection
    (pki / "crl.pem").write_text("-----BEGIN X509 CRL-----\ngarbage\n")
    assert (await _handshake(running, client_context(ca_crt, bad_crt, bad_key))) != "ok"
    assert await _handshake(running, client_context(ca_crt, good_crt, good_key)) == "ok"
