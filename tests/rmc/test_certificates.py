"""The RMC's CertificateService: its own HTTPS certificate renewed through Redfish.

The same code as the BMC's (``racklet.bmc.certificates``): the RMC makes the key, the rack
CA signs the CSR, and the RMC's next TLS handshake presents the new certificate. Only an
Administrator and the rack's controller (its client certificate) may make keys or install
certificates; an Operator or a reader is refused and nothing changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from racklet.api import ObjectMeta, RackSpec, find_condition
from racklet.api import Rack as RackObject
from racklet.bmc.certificates import CertificateStore, https_slot
from racklet.config import RmcConfig, save
from racklet.controller._certificates import UnitCertificates
from racklet.net import client_context, pem_identity
from racklet.pki import RackCA, inventory, renew_due, write_crl
from racklet.redfish import RedfishClient
from racklet.rmc import prepare_rmc, rmc_dir, serve_rmc
from racklet.store import SqliteStore
from tests.cli.conftest import run_main
from tests.rmc.conftest import ADMIN, OPERATOR, READER, Rack, free_port
from tests.rmc.test_setup import _config

SERVICE = "/redfish/v1/CertificateService"
CSR = f"{SERVICE}/Actions/CertificateService.GenerateCSR"
REPLACE = f"{SERVICE}/Actions/CertificateService.ReplaceCertificate"
MANAGER = "/redfish/v1/Managers/rmc"
HTTPS = f"{MANAGER}/NetworkProtocol/HTTPS/Certificates"


async def _served(url: str, ca: Path) -> int:
    """The serial number of the certificate the listener at ``url`` presents in a fresh
    handshake."""
    port = int(url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(ca), server_hostname="127.0.0.1"
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def _csr(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post(
        CSR, json={"CertificateCollection": {"@odata.id": HTTPS}, "CommonName": "rmc"}
    )


async def _replace(http: httpx.AsyncClient, pem: bytes) -> httpx.Response:
    return await http.post(
        REPLACE,
        json={
            "CertificateString": pem.decode(),
            "CertificateType": "PEM",
            "CertificateUri": {"@odata.id": f"{HTTPS}/1"},
        },
    )


def _sign(ca: RackCA, csr: str, role: str = "rmc") -> bytes:
    return ca.sign_csr(csr.encode(), common_name="rmc", role=role, sans=("127.0.0.1",), days=7)


async def test_an_administrator_renews_the_rmc_certificate_and_the_next_handshake_uses_it(
    rack: Rack, tmp_path: Path
) -> None:
    ca = RackCA.load(tmp_path / "pki")
    before = await _served(rack.url, rack.ca)
    async with rack.client(ADMIN) as http:
        service = (await http.get(SERVICE)).json()
        assert f"#{CSR.rsplit('/', 1)[1]}" in service["Actions"]
        assert (await http.get("/redfish/v1")).json()["CertificateService"] == {
            "@odata.id": SERVICE
        }
        answer = await _csr(http)
        assert answer.status_code == 200, answer.text
        pem = _sign(ca, answer.json()["CSRString"])
        installed = await _replace(http, pem)
        assert installed.status_code == 200, installed.text
        shown = (await http.get(f"{HTTPS}/1")).json()
        locations = (await http.get(f"{SERVICE}/CertificateLocations")).json()
    new = x509.load_pem_x509_certificate(pem).serial_number
    assert shown["CertificateString"] == pem.decode()
    assert locations["Links"]["Certificates"] == [{"@odata.id": f"{HTTPS}/1"}]
    assert await _served(rack.url, rack.ca) == new != before
    assert pem_identity(pem) == ca.spiffe_id("rmc")


@pytest.mark.parametrize("who", [OPERATOR, READER], ids=["operator", "reader"])
async def test_operators_and_readers_may_read_but_not_replace_the_rmc_certificate(
    rack: Rack, tmp_path: Path, who: tuple[str, str]
) -> None:
    ca = RackCA.load(tmp_path / "pki")
    async with rack.client(ADMIN) as admin:
        csr = (await _csr(admin)).json()["CSRString"]  # a pending key the caller could target
    before = await _served(rack.url, rack.ca)
    async with rack.client(who) as http:
        assert (await http.get(f"{HTTPS}/1")).status_code == 200
        refused_csr = await _csr(http)
        refused_replace = await _replace(http, _sign(ca, csr))
    for refused in (refused_csr, refused_replace):
        assert refused.status_code == 403, refused.text
        info = refused.json()["error"]["@Message.ExtendedInfo"][0]
        assert info["MessageId"].endswith("InsufficientPrivilege")
    assert await _served(rack.url, rack.ca) == before


async def test_a_certificate_for_another_role_is_refused_and_the_old_one_stays(
    rack: Rack, tmp_path: Path
) -> None:
    ca = RackCA.load(tmp_path / "pki")
    before = await _served(rack.url, rack.ca)
    async with rack.client(ADMIN) as http:
        csr = (await _csr(http)).json()["CSRString"]
        answer = await _replace(http, _sign(ca, csr, role="bmc/unit-1"))
    assert answer.status_code == 400
    resolution = answer.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
    assert ca.spiffe_id("rmc") in resolution
    assert await _served(rack.url, rack.ca) == before


async def test_the_controller_certificate_renews_the_rmc_served_by_racklet_up(
    rack: Rack, tmp_path: Path
) -> None:
    """``serve_rmc`` as ``racklet up`` runs it: the controller logs in with its client
    certificate (no password), and the listener follows the replaced files."""
    state = tmp_path / "state"
    (state / "pki").mkdir(parents=True)
    for name in ("ca.crt", "ca.key"):
        (state / "pki" / name).write_bytes((tmp_path / "pki" / name).read_bytes())
    ca = RackCA.load(state / "pki")
    write_crl(ca, state / "pki")
    config = _config(state, rack)
    prepare_rmc(rmc_dir(config), ca)
    controller = ca.issue("racklet-controller", role="controller", server=False, client=True)
    key, crt = controller.write(tmp_path / "controller", "client")
    running = await serve_rmc(config, port=free_port())
    try:
        before = await _served(running.url, rack.ca)
        verify = client_context(rack.ca)
        verify.load_cert_chain(crt, key)
        async with httpx.AsyncClient(base_url=running.url, verify=verify) as http:
            answer = await _csr(http)
            assert answer.status_code == 200, answer.text
            pem = _sign(ca, answer.json()["CSRString"])
            assert (await _replace(http, pem)).status_code == 200
        new = x509.load_pem_x509_certificate(pem).serial_number
        for _ in range(200):  # the listener follows its files (a stat a second)
            if await _served(running.url, rack.ca) == new:
                break
            await asyncio.sleep(0.05)
        assert await _served(running.url, rack.ca) == new != before
        # Without a certificate or a password nothing is let through.
        async with httpx.AsyncClient(base_url=running.url, verify=client_context(rack.ca)) as anon:
            assert (await _csr(anon)).status_code == 401
        other = RackCA.create(tmp_path / "other").issue("x", role="controller", client=True)
        okey, ocrt = other.write(tmp_path / "other", "client")
        stranger = client_context(rack.ca)
        stranger.load_cert_chain(ocrt, okey)
        with pytest.raises(httpx.TransportError):  # nor a certificate another CA signed
            async with httpx.AsyncClient(base_url=running.url, verify=stranger) as http:
                await _csr(http)
    finally:
        await running.stop()


async def test_the_controller_renews_the_rmc_certificate_as_it_renews_a_bmcs(
    rack: Rack, tmp_path: Path
) -> None:
    """The controller's certificate task, given the rack's RMC: once two thirds of the RMC's
    certificate's lifetime are used, a fresh key and a week-long certificate, an event and a
    condition on the Rack; a round with nothing due changes nothing."""
    ca = RackCA.load(tmp_path / "pki")
    key, crt = ca.issue("racklet-controller", role="controller", server=False, client=True).write(
        tmp_path / "controller", "client"
    )
    client = RedfishClient(
        rack.url,
        "controller",
        None,
        ca_bundle=rack.ca,
        client_cert=(crt, key),
        expect=ca.spiffe_id("rmc"),
    )
    store = SqliteStore(tmp_path / "store.db")
    await store.create(
        RackObject(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=50))
    )
    now = dt.datetime.now(dt.UTC)
    clock = [now + dt.timedelta(days=61)]  # `racklet up` issued it for 90 days
    task = UnitCertificates(
        store, {}, tmp_path / "pki", now=lambda: clock[0], rmc=("rack-1", client)
    )
    try:
        before = await _served(rack.url, rack.ca)
        assert await task.run_once()
        renewed = await _served(rack.url, rack.ca)
        clock[0] = now
        assert await task.run_once()
        assert await _served(rack.url, rack.ca) == renewed != before
        async with rack.client(READER) as http:
            shown = (await http.get(f"{HTTPS}/1")).json()
        cert = x509.load_pem_x509_certificate(shown["CertificateString"].encode())
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=8)
        assert pem_identity(shown["CertificateString"].encode()) == ca.spiffe_id("rmc")
        stored = await store.get(RackObject, "rack-1")
        condition = find_condition(stored.status.conditions, "RmcCertificate")
        assert condition is not None and condition.status == "True", condition
        events = await store.events("rack-1", limit=100, kind="Rack")
        assert [e.reason for e in events] == ["RmcCertificateRenewed"]
    finally:
        await client.aclose()
        await store.close()


def test_once_the_rmc_holds_its_https_key_only_its_client_identity_is_renewed_by_file(
    tmp_path: Path,
) -> None:
    """The RMC's HTTPS key is made inside it (a CSR; the controller renews it so), but its
    client identity to the BMCs still sits beside it as files, renewed by the PKI chore."""
    ca = RackCA.create(tmp_path / "pki")
    directory = tmp_path / "rmc"
    prepare_rmc(directory, ca)
    store = CertificateStore(
        directory, https_slot(MANAGER, "rmc", "rmc"), rack_ca=tmp_path / "pki" / "ca.crt"
    )
    store.generate_csr(store.https)  # the RMC now makes its own HTTPS keys
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=80)
    renewed = renew_due(ca, tmp_path, now=later)
    assert renewed == [directory / "client.crt"]
    assert [i.path for i in inventory(tmp_path) if i.path.parent == directory] == [
        directory / "client.crt"
    ]


async def test_pki_status_lists_the_certificate_the_rmc_holds(rack: Rack, tmp_path: Path) -> None:
    """Once the RMC makes its own HTTPS key its certificate is no file of the state dir: the
    RMC reports it, and ``racklet pki status`` shows it beside the BMCs' (with the CRL)."""
    config = _config(tmp_path, rack).model_copy(
        update={"rmc": RmcConfig(url=rack.url, username=ADMIN[0], password=ADMIN[1])}
    )
    path = save(config)
    write_crl(RackCA.load(tmp_path / "pki"), tmp_path / "pki")
    shown = await asyncio.to_thread(run_main, "--config", str(path), "pki", "status")
    assert shown.code == 0, shown.err
    row = next(line.split() for line in shown.out.splitlines() if line.startswith("rmc "))
    assert row[:3] == ["rmc", "https", "rmc"] and row[-1] == "ok", shown.out
    assert "Held by the BMCs and the RMC" in shown.out


async def test_an_rmc_without_the_rack_ca_refuses_a_certificate_and_keeps_its_own(
    rack: Rack, tmp_path: Path
) -> None:
    """The RMC checks an offered certificate against its CA bundle: without one it answers a
    Redfish 400 saying so (not a 500), and its next handshake presents the old certificate."""
    ca = RackCA.load(tmp_path / "pki")
    before = await _served(rack.url, rack.ca)
    bundle = tmp_path / "pki" / "ca.crt"
    async with rack.client(ADMIN) as http:
        csr = (await _csr(http)).json()["CSRString"]
        bundle.rename(tmp_path / "ca.crt.away")
        try:
            answer = await _replace(http, _sign(ca, csr))
        finally:
            (tmp_path / "ca.crt.away").rename(bundle)
    assert answer.status_code == 400, answer.text
    info = answer.json()["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageId"] == "Base.1.22.ActionParameterValueError"
    assert "no rack CA" in info["Resolution"] and "ca.crt is missing" in info["Resolution"]
    assert await _served(rack.url, rack.ca) == before
