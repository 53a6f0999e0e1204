"""A rack stopped for longer than its certificates live: the BMC comes back serving an expired
HTTPS certificate, which the controller's pinned mutual TLS refuses. The controller renews it
anyway, reaching the BMC by the key it certified last time (and by no other key).

A real BMC service over TLS; the controller's real client (its client certificate, pinned to
``spiffe://rack-1/bmc/unit-1``). The expired certificate is made as the rack CA made it, with
dates in the past: the TLS stacks check real time, so nothing here waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, find_condition
from racklet.bmc import BmcService, BmcSettings
from racklet.config import write_atomic
from racklet.controller._certificates import UnitCertificates
from racklet.net import AppServer
from racklet.pki import RackCA, revoke
from racklet.redfish import RedfishClient, RedfishClientError
from racklet.store import SqliteStore
from tests.bmc.conftest import UNIT, FakeUnit, FastClock, free_port, make_board, make_state_dir

HTTPS = "/redfish/v1/Managers/bmc/NetworkProtocol/HTTPS/Certificates/1"


def _expired(ca: RackCA, cert_pem: bytes) -> bytes:
    """``cert_pem`` as the rack CA would have signed it ten days ago, for a week."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=10))
        .not_valid_after(now - dt.timedelta(days=3))
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(ca.signer(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@dataclass
class StoppedRack:
    ca: RackCA
    pki: Path
    url: str
    port: int
    expired: bytes
    """The BMC's HTTPS certificate, expired while the rack was stopped."""
    store: SqliteStore
    controller: RedfishClient
    """The controller's client of this BMC, as ``racklet.controller`` makes it."""


@contextlib.asynccontextmanager
async def stopped_rack(tmp_path: Path) -> AsyncIterator[StoppedRack]:
    """A BMC back from a long stop: its HTTPS certificate (the last one the controller signed
    for it, recorded in ``pki/issued``) expired three days ago."""
    state, ca_path = make_state_dir(tmp_path)
    pki = tmp_path / "pki"
    ca = RackCA.load(pki)
    expired = _expired(ca, (state / "server.crt").read_bytes())
    write_atomic(state / "server.crt", expired)
    write_atomic(pki / "issued" / f"{UNIT}-bmc.pem", expired)
    client_cert = ca.issue("racklet-controller", role="controller", server=False, client=True)
    crt_key = client_cert.write(tmp_path, "controller-client")
    board, _, _, _ = make_board(FakeUnit(), FastClock(50.0))
    service = BmcService(
        board, BmcSettings(unit=UNIT, state_dir=state, firmware_version="racklet-bmc test")
    )
    port = free_port()
    server = AppServer(
        service.app,
        port=port,
        ssl_context=service.certificates.server_context(ca_path),
        name="bmc-test",
    )
    store = SqliteStore(tmp_path / "store.db")
    url = f"https://127.0.0.1:{port}"
    await store.create(
        ComputeUnit(
            metadata=ObjectMeta(name=UNIT),
            spec=ComputeUnitSpec(slot=1, power="On", bmc=BmcRef(url=url)),
        )
    )
    controller = RedfishClient(
        url,
        "racklet-controller",
        None,
        ca_bundle=ca_path,
        client_cert=(crt_key[1], crt_key[0]),
        expect=ca.spiffe_id(f"bmc/{UNIT}"),
    )
    await service.start()
    try:
        await server.start()
        try:
            yield StoppedRack(ca, pki, url, port, expired, store, controller)
        finally:
            await server.stop()
    finally:
        await controller.aclose()
        await store.close()
        await service.stop()


async def _served(rack: StoppedRack) -> x509.Certificate:
    """The certificate the BMC presents in a fresh handshake (looked at, not trusted)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", rack.port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


@pytest.fixture
async def rack(tmp_path: Path) -> AsyncIterator[StoppedRack]:
    async with stopped_rack(tmp_path) as started:
        yield started


async def test_the_controller_renews_a_bmc_certificate_that_expired_while_stopped(
    rack: StoppedRack,
) -> None:
    with pytest.raises(RedfishClientError, match="expired"):  # the lock-out, as it was
        await rack.controller.certificate(HTTPS)
    task = UnitCertificates(rack.store, {UNIT: rack.controller}, rack.pki)
    assert await task.run_once()
    served = await _served(rack)
    now = dt.datetime.now(dt.UTC)
    assert served.not_valid_before_utc <= now < served.not_valid_after_utc
    served.verify_directly_issued_by(rack.ca.cert)
    old = x509.load_pem_x509_certificate(rack.expired)
    assert served.public_key() != old.public_key(), "a fresh key, made by the BMC"
    # The pinned client works again as it is, with no exception for this BMC.
    body = await rack.controller.certificate(HTTPS)
    assert body is not None
    unit = await rack.store.get(ComputeUnit, UNIT)
    condition = find_condition(unit.status.conditions, "BmcCertificate")
    assert condition is not None and condition.status == "True"


async def test_an_expired_certificate_with_a_key_the_controller_did_not_certify_is_refused(
    rack: StoppedRack,
) -> None:
    """Someone else's key behind the BMC's address (or a BMC whose key changed outside the
    controller): its expired certificate is no way in, and nothing is sent to it."""
    stranger = rack.ca.issue(f"{UNIT}-bmc", role=f"bmc/{UNIT}")
    write_atomic(rack.pki / "issued" / f"{UNIT}-bmc.pem", _expired(rack.ca, stranger.cert_pem))
    task = UnitCertificates(rack.store, {UNIT: rack.controller}, rack.pki)
    assert not await task.run_once()
    served = await _served(rack)
    assert served.serial_number == x509.load_pem_x509_certificate(rack.expired).serial_number
    unit = await rack.store.get(ComputeUnit, UNIT)
    condition = find_condition(unit.status.conditions, "BmcCertificate")
    assert condition is not None and condition.status == "False"
    assert "not the one known" in condition.message


async def test_an_expired_certificate_that_was_revoked_is_no_way_in(rack: StoppedRack) -> None:
    """A revoked key (a stolen BMC's) gets no exception for its expiry either."""
    revoke(rack.ca, rack.pki, rack.expired)
    task = UnitCertificates(rack.store, {UNIT: rack.controller}, rack.pki)
    assert not await task.run_once()
    served = await _served(rack)
    assert served.serial_number == x509.load_pem_x509_certificate(rack.expired).serial_number
